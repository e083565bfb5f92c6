#if canImport(Glibc)
import Glibc
#endif

/// The version reported by the iprotod_build_info metric.
let iprotodVersion = "0.2.0"

let arguments = EnvironmentOptions.arguments(for: IProtoD.self) + CommandLine.arguments.dropFirst()
do {
    var command = try IProtoD.parseAsRoot(Array(arguments))
    try command.run()
} catch let failure as StartFailure {
    let line = "iprotod: \(failure)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    exit(failure.status.rawValue)
} catch {
    // --help and friends print as usual; a bad value is one line on standard error.
    guard IProtoD.exitCode(for: error) != .success else { IProtoD.exit(withError: error) }
    // ArgumentParser lists allowed values one per line ("\n  - trace"); fold them into the line.
    let message = IProtoD.message(for: error).split(separator: "\n")
        .map { $0.hasPrefix("  - ") ? $0.dropFirst(4) : $0 }
        .joined(separator: " ")
    let line = "iprotod: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    exit(IProtoD.exitCode(for: error).rawValue)
}
