import FileGateway

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String, status: Int32) -> Never {
    let line = "iproto-filegw: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    exit(status)
}

do {
    let command = try IProtoFileGW.parseAsRoot() as! IProtoFileGW
    try await command.run()
} catch let failure as GatewayStartFailure {
    fail(failure.description, status: failure.exitCode)
} catch {
    guard IProtoFileGW.exitCode(for: error) != .success else { IProtoFileGW.exit(withError: error) }
    fail(IProtoFileGW.message(for: error).split(separator: "\n").joined(separator: " "), status: IProtoFileGW.exitCode(for: error).rawValue)
}
