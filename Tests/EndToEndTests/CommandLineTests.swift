import Foundation
import IProtoTestSupport
import Testing

@Suite struct CommandLineTests {
    /// Runs iprotod to completion; returns its exit status and standard error.
    private func run(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServerProcess.binaryPath)
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    @Test(arguments: [
        (["--workers", "0"], "workers must be between 1 and 1024"),
        (["--max-body=-1"], "max body"),
        (["--max-output", "0"], "max output"),
        (["--max-connections", "0"], "max connections"),
        (["--read-timeout=-1"], "--read-timeout"),
        (["--idle-timeout", "nan"], "--idle-timeout"),
        (["--listen", "nonsense"], "--listen must be HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], "--listen must be HOST:PORT"),
        (["--initial-state", "broken"], "initial-state"),
        (["--log-level", "loud"], "log-level"),
    ])
    func invalidValuesFailAtStartup(arguments: [String], message: String) throws {
        let result = try run(arguments + ["--listen", "127.0.0.1:0"].filter { _ in !arguments.contains("--listen") })
        #expect(result.status != 0)
        #expect(result.errors.contains(message), "stderr: \(result.errors)")
        #expect(result.output.isEmpty)
    }

    @Test func portInUseIsAClearError() throws {
        let first = try ServerProcess()
        let result = try run(["--listen", "127.0.0.1:\(first.port)"])
        #expect(result.status != 0)
        #expect(result.errors.contains("cannot listen on 127.0.0.1:\(first.port)"), "stderr: \(result.errors)")
    }

    @Test func helpDocumentsEveryFlagWithItsDefault() throws {
        let result = try run(["--help"])
        #expect(result.status == 0)
        for flag in ["--listen", "--workers", "--max-body", "--max-output", "--max-connections", "--read-timeout",
                     "--idle-timeout", "--shutdown-timeout", "--initial-state", "--log-level"] {
            #expect(result.output.contains(flag), "missing \(flag)")
        }
        for value in ["127.0.0.1:3301", "65536", "1048576", "1024", "read-write"] {
            #expect(result.output.contains(value), "missing default \(value)")
        }
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func stopSignalsCloseClientsAndExitZero(signal: Int32) throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        #expect(try connection.read(0).returnCode == .ok)
        #expect(server.stop(signal: signal) == 0)
        #expect(connection.nextOutcome() == .closed)
    }
}
