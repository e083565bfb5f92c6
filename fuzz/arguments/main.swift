#if canImport(Glibc)
import Glibc
#endif

// SwiftPM gives every executable target its own main, so libFuzzer runs from
// here (libclang_rt.fuzzer_no_main) rather than from libFuzzer's main.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzArguments(data, size) })
