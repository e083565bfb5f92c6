import Foundation
import IProto
import IProtoTestSupport
import Testing

@Suite struct CommandLineTests {
    private func run(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        try ServerProcess.run(ServerProcess.binaryPath, arguments)
    }

    @Test(arguments: [
        (["--workers", "0"], "workers must be between 1 and 1024"),
        (["--max-body=-1"], "max body"),
        (["--max-output", "0"], "max output"),
        (["--memory-budget=-1"], "memory budget must not be negative"),
        (["--max-connections", "0"], "max connections"),
        (["--read-timeout=-1"], "--read-timeout"),
        (["--idle-timeout", "nan"], "--idle-timeout"),
        (["--listen", "nonsense"], "--listen must be HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], "--listen must be HOST:PORT"),
        (["--initial-state", "broken"], "initial-state"),
        (["--log-level", "loud"], "log-level"),
        (["--read-timeout", "0.0004"], "--read-timeout must be 0 (disabled) or at least 0.001 s"),
        (["--idle-timeout", "1e300"], "--idle-timeout must be a number of seconds"),
        (["--ipv6-prefix-length", "0"], "IPv6 prefix length must be between 1 and 128"),
        (["--ipv6-prefix-length", "129"], "IPv6 prefix length must be between 1 and 128"),
        (["--rate-limit-per-ip=-1"], "rate limit per IP"),
        (["--rate-burst-per-ip", "0"], "rate burst per IP"),
    ])
    func invalidValuesFailAtStartup(arguments: [String], message: String) throws {
        let result = try run(arguments + ["--listen", "127.0.0.1:0"].filter { _ in !arguments.contains("--listen") })
        #expect(result.status == 64)  // a usage error: systemd does not restart it
        #expect(result.errors.contains(message), "stderr: \(result.errors)")
        #expect(result.errors.hasPrefix("iprotod: ") && result.errors.split(separator: "\n").count == 1,
                "one line: \(result.errors)")
        #expect(result.output.isEmpty)
    }

    @Test func metricsPortInUseIsAClearError() throws {
        let first = try ServerProcess()
        let result = try run(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:\(first.metricsPort)"])
        #expect(result.status == 69)  // the environment's: a restart may succeed
        #expect(result.errors.contains("cannot serve metrics on 127.0.0.1:\(first.metricsPort)"), "stderr: \(result.errors)")
        #expect(result.errors.contains("Address already in use"))
        #expect(result.output.isEmpty, "nothing is announced when the start fails")
    }

    @Test func portInUseIsAClearError() throws {
        let first = try ServerProcess()
        let result = try run(["--listen", "127.0.0.1:\(first.port)"])
        #expect(result.status == 69)
        #expect(result.errors.contains("cannot listen on 127.0.0.1:\(first.port)"), "stderr: \(result.errors)")
    }

    @Test func helpDocumentsEveryFlagWithItsDefault() throws {
        let result = try run(["--help"])
        #expect(result.status == 0)
        for flag in ["--listen", "--workers", "--max-body", "--max-output", "--max-connections", "--read-timeout",
                     "--idle-timeout", "--shutdown-timeout", "--initial-state", "--log-level", "--max-connections-per-ip",
                     "--rate-limit", "--rate-burst", "--metrics-listen", "--reuse-port", "IPROTOD_",
                     "--rate-limit-per-ip", "--rate-burst-per-ip", "--ipv6-prefix-length", "--admin-from", "--memory-budget"] {
            #expect(result.output.contains(flag), "missing \(flag)")
        }
        for value in ["127.0.0.1:3301", "65536", "1048576", "1024", "read-write", "127.0.0.1:8088",
                      "(default: 64)", "127.0.0.0/8,::1/128", "268435456"] {
            #expect(result.output.contains(value), "missing default \(value)")
        }
    }

    @Test func optionsComeFromTheEnvironmentAndTheCommandLineWins() throws {
        let server = try ServerProcess(["--rate-limit", "0"], environment: [
            "IPROTOD_MAX_BODY": "10", "IPROTOD_RATE_LIMIT": "1", "IPROTOD_INITIAL_STATE": "read-only",
        ])
        let connection = try server.connect()
        #expect(try connection.replace(0, "x").returnCode == .readOnlyStorage)
        for _ in 0..<5 { #expect(try connection.read(0).returnCode == .ok, "--rate-limit 0 beats IPROTOD_RATE_LIMIT=1") }
        #expect(try connection.call(API.read, messagePack(.string("0123456789"))).returnCode == .bodyTooLarge)
    }

    @Test func invalidEnvironmentValuesFailAtStartup() throws {
        let result = try ServerProcess.run(ServerProcess.binaryPath, [], environment: ["IPROTOD_WORKERS": "zero"])
        #expect(result.status != 0)
        #expect(result.errors.contains("workers"), "stderr: \(result.errors)")
    }

    @Test func refusedRequestsAreLoggedAtMostOncePerSecondPerConnection() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("iprotod-\(UUID()).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let server = try ServerProcess(["--log-level", "debug"], log: log)
        let connection = try server.connect()
        var batch: [UInt8] = []
        for id in 0..<500 { batch += Framing.request(funcID: 0x0009_0009, requestID: UInt32(id), body: []) }
        try connection.send(batch)
        for _ in 0..<500 { #expect(try connection.readResponse().returnCode == .unknownFunction) }
        usleep(1_100_000)
        #expect(try connection.call(0x0009_0009).returnCode == .unknownFunction)
        connection.shutdownWrite()
        #expect(connection.nextOutcome() == .closed)
        #expect(server.stop() == 0)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        let refused = lines.filter { $0.contains("request refused") }
        #expect(refused.count == 2, "\(refused)")
        #expect(refused.last?.contains("suppressed=499") == true, "\(refused)")
        #expect(refused.first?.contains("reason=unknown_function") == true)
        #expect(refused.first?.contains("peer=127.0.0.1:") == true)
        #expect(lines.contains { $0.contains("connection opened") && $0.contains("debug") })
        #expect(lines.contains { $0.contains("connection closed") && $0.contains("reason=peer") })
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
