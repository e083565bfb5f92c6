import VolumeService

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String, status: Int32) -> Never {
    let line = "iproto-volumed: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    exit(status)
}

do {
    var command = try IProtoVolumed.parseAsRoot()
    try command.run()
} catch let failure as VolumeStartFailure {
    fail(failure.description, status: failure.exitCode)
} catch {
    guard IProtoVolumed.exitCode(for: error) != .success else { IProtoVolumed.exit(withError: error) }
    fail(IProtoVolumed.message(for: error).split(separator: "\n").joined(separator: " "), status: IProtoVolumed.exitCode(for: error).rawValue)
}
