import Foundation
import IProtoTestSupport
import Testing

/// `iproto kv` without a cluster: its help, its refusals, and the REPL against a port where nothing listens.
/// (Against a real cluster it is tested with the cluster's tests.)
@Suite struct KVToolTests {
    /// A port on 127.0.0.1 that was free a moment ago: bound, then closed.
    private func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSocketError("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw TestSocketError("bind failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private func iproto(_ arguments: String...) throws -> (status: Int32, output: String, errors: String) {
        try ServerProcess.run(ServerProcess.siblingPath("iproto"), arguments)
    }

    @Test func helpNamesTheCommandsAndExitStatuses() throws {
        let help = try iproto("kv", "--help")
        #expect(help.status == 0)
        for text in ["GET KEY", "SET KEY VALUE", "DELETE KEY", "nodes", "quit", "--node", "--timeout",
                     "get", "set", "delete", "repl (default)", "outcome unknown", "absent"] {
            #expect(help.output.contains(text), "missing \(text) in:\n\(help.output)")
        }
        let repl = try iproto("kv", "repl", "--help")
        #expect(repl.output.contains("--heartbeat-interval"))
        #expect(repl.output.contains("--history"))
        #expect(try iproto("--help").output.contains("kv"))
    }

    @Test func oneShotsAgainstAClosedPortExitTwo() throws {
        let port = try closedPort()
        let key = UUID().uuidString.lowercased()
        for arguments in [["get", key], ["set", key, "v"], ["delete", key], ["nodes"]] {
            let run = try ServerProcess.run(ServerProcess.siblingPath("iproto"),
                                            ["kv"] + arguments + ["--node", "127.0.0.1:\(port)", "--timeout", "0.5"])
            #expect(run.status == 2, "\(arguments): \(run)")
            #expect(run.output == "", "\(arguments)")
            #expect(run.errors.hasPrefix("iproto: unavailable: "), "\(arguments): \(run.errors)")
            #expect(run.errors.contains("127.0.0.1:\(port)"), "\(arguments): \(run.errors)")
            #expect(run.errors.contains("Connection refused"), "\(arguments): \(run.errors)")
        }
    }

    @Test func badOptionsAreRefused() throws {
        let key = UUID().uuidString
        let noPort = try iproto("kv", "get", key, "--node", "127.0.0.1")
        #expect(noPort.status == 64)
        #expect(noPort.errors.contains("--node takes HOST:PORT"), "\(noPort.errors)")
        let timeout = try iproto("kv", "get", key, "--timeout", "0")
        #expect(timeout.status == 64)
        #expect(timeout.errors.contains("--timeout must be a number of seconds"), "\(timeout.errors)")
    }

    @Test func replWithoutAClusterHelpsAndReportsErrors() throws {
        let port = try closedPort()
        let history = FileManager.default.temporaryDirectory.appendingPathComponent("iproto-kv-history-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: history) }
        let terminal = try Terminal(
            "\(ServerProcess.siblingPath("iproto")) kv --node 127.0.0.1:\(port) --timeout 0.5 --history \(history)")
        #expect(terminal.shows("type help"), "screen:\n\(terminal.screen)")

        try terminal.type("help", "Enter")
        #expect(terminal.shows("SET KEY VALUE"), "screen:\n\(terminal.screen)")
        #expect(terminal.shows("nodes"))

        let key = UUID().uuidString.lowercased()
        try terminal.type("GET \(key)", "Enter")
        #expect(terminal.shows("error: unavailable: 127.0.0.1:\(port)", within: 20), "screen:\n\(terminal.screen)")
        #expect(terminal.screen.contains("Connection refused"), "screen:\n\(terminal.screen)")

        try terminal.type("DEL", "Tab")  // completes the command word, in either case
        #expect(terminal.shows("kv> DELETE\n"), "screen:\n\(terminal.screen)")
        try terminal.type(key, "Enter")  // after the space the completion added
        #expect(terminal.shows("kv> DELETE \(key)\nerror: ", within: 20), "screen:\n\(terminal.screen)")

        try terminal.type("bogus", "Enter")
        #expect(terminal.shows("error: unknown command or wrong arguments: bogus"), "screen:\n\(terminal.screen)")

        try terminal.type("quit", "Enter")
        #expect(eventually {
            (try? String(contentsOfFile: history, encoding: .utf8))?.contains("GET\\040\(key)") == true
        })
    }
}
