import KVService

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String, status: Int32) -> Never {
    let line = "iproto-kvd: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    exit(status)
}

do {
    var command = try IProtoKVD.parseAsRoot()
    try command.run()
} catch let failure as KVStartFailure {
    fail(failure.description, status: failure.exitCode)
} catch {
    guard IProtoKVD.exitCode(for: error) != .success else { IProtoKVD.exit(withError: error) }
    fail(IProtoKVD.message(for: error).split(separator: "\n").joined(separator: " "), status: IProtoKVD.exitCode(for: error).rawValue)
}
