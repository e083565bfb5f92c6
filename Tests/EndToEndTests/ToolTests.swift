import Foundation
import IProtoTestSupport
import Testing

/// The `iproto` command-line client against the real server.
@Suite struct ToolTests {
    private func iproto(_ server: ServerProcess, _ arguments: String...) throws -> (status: Int32, output: String, errors: String) {
        try ServerProcess.run(ServerProcess.siblingPath("iproto"), arguments + ["--port", "\(server.port)"])
    }

    @Test func callAndStateSubcommands() throws {
        let server = try ServerProcess()
        #expect(try iproto(server, "call", "replace", "5", "hello world") == (0, "ok\n", ""))
        #expect(try iproto(server, "call", "read", "5") == (0, "hello world\n", ""))
        #expect(try iproto(server, "state", "read-only") == (0, "ok\n", ""))
        let refused = try iproto(server, "call", "replace", "5", "x")
        #expect(refused.status == 1)
        #expect(refused.errors == "iproto: server error 256: storage is read-only\n")
        #expect(try iproto(server, "state", "maintenance").status == 0)
        #expect(try iproto(server, "call", "read", "5").errors == "iproto: server error 257: storage is in maintenance\n")
        #expect(try iproto(server, "state", "read-write").status == 0)
        #expect(try iproto(server, "call", "read", "1000").errors == "iproto: server error 4: index 1000 is out of range 0...999\n")
    }

    @Test func rawPrintsHexAndDecodedValue() throws {
        let server = try ServerProcess()
        #expect(try iproto(server, "raw", "0x00020001", "05 a2 68 69").status == 0)
        let read = try iproto(server, "raw", "0x00020002", "05")
        #expect(read.status == 0)
        #expect(read.output == "return_code 0 (ok)\nbody a2 68 69\nvalue \"hi\"\n")
        let unknown = try iproto(server, "raw", "196609", "")  // 0x00030001 in decimal
        #expect(unknown.status == 1)
        #expect(unknown.output.hasPrefix("return_code 1 (unknown_function)\n"))
        #expect(unknown.output.hasSuffix("value \"unknown function 0x00030001\"\n"))
    }

    /// 1e300 s crashed the client (an Int64 overflow); 0.0001 s silently became 0.
    @Test(arguments: ["1e300", "0.0001", "0", "inf"])
    func timeoutsOutOfRangeAreRefused(timeout: String) throws {
        let server = try ServerProcess()
        let result = try iproto(server, "call", "read", "5", "--timeout", timeout)
        #expect(result.status == 64)
        #expect(result.errors.contains("--timeout must be a number of seconds from 0.001 to 86400"), "\(result.errors)")
    }

    @Test func badInputAndNoServerFailClearly() throws {
        let server = try ServerProcess()
        let badHex = try iproto(server, "raw", "0x00020002", "0g")
        #expect(badHex.status != 0)
        #expect(badHex.errors.contains("HEXBODY must be pairs of hex digits"))
        let badState = try iproto(server, "state", "broken")
        #expect(badState.status != 0)
        #expect(badState.errors.contains("read-only"))
        let nobody = try ServerProcess.run(ServerProcess.siblingPath("iproto"), ["call", "read", "1", "--port", "1"])
        #expect(nobody.status == 1)
        #expect(nobody.errors.hasPrefix("iproto: cannot connect: 127.0.0.1:1: Connection refused"))
    }
}

/// `iproto bench` against the real server: counts, mix, pacing and failures.
@Suite struct BenchToolTests {
    private func bench(_ port: Int, _ arguments: String...) throws -> (status: Int32, summary: [String: Any], errors: String) {
        let run = try ServerProcess.run(ServerProcess.siblingPath("iproto"), ["bench", "--port", "\(port)", "--json"] + arguments)
        let summary = (try? JSONSerialization.jsonObject(with: Data(run.output.utf8))) as? [String: Any] ?? [:]
        return (run.status, summary, run.errors)
    }

    @Test func countedRunSendsTheRequestsAndTheMix() throws {
        let server = try ServerProcess(["--rate-limit", "0", "--rate-limit-per-ip", "0"])
        let run = try bench(server.port, "--connections", "4", "--threads", "2", "--pipeline", "8",
                            "--requests", "2000", "--mix", "read=50,replace=50", "--keys", "1", "--value-size", "7")
        #expect(run.status == 0, "\(run.errors)")
        let requests = run.summary["requests"] as? Int ?? 0
        #expect((2000...2000 + 4 * 8).contains(requests))  // whole batches: rounded up to connections x pipeline
        #expect(run.summary["errors"] as? [String: Int] == [:])
        let latency = run.summary["latency_us"] as? [String: Double] ?? [:]
        #expect(Set(latency.keys) == ["p50", "p90", "p99", "p99.9", "max"])
        #expect(latency["p50"].map { $0 > 0 && $0 <= latency["max"]! } == true)
        // With one key, every REPLACE wrote slot 0.
        let read = try ServerProcess.run(ServerProcess.siblingPath("iproto"), ["call", "read", "0", "--port", "\(server.port)"])
        #expect(read.output == "vvvvvvv\n")
    }

    @Test func targetRateIsKept() throws {
        let server = try ServerProcess(["--rate-limit", "0", "--rate-limit-per-ip", "0"])
        // 10 connections at 500 requests/s in all: one request every 20 ms each, 50 each in one second.
        let run = try bench(server.port, "--connections", "10", "--rate", "500", "--duration", "1")
        #expect(run.status == 0, "\(run.errors)")
        let requests = run.summary["requests"] as? Int ?? 0
        #expect((300...510).contains(requests), "sent \(requests)")
    }

    @Test func errorsAreCountedAndRefusedConnectionsFail() throws {
        let server = try ServerProcess(["--rate-limit", "0", "--rate-limit-per-ip", "0"])
        _ = try ServerProcess.run(ServerProcess.siblingPath("iproto"), ["state", "read-only", "--port", "\(server.port)"])
        let refused = try bench(server.port, "--connections", "2", "--requests", "100", "--mix", "replace=1")
        #expect(refused.status == 0)
        #expect(refused.summary["errors"] as? [String: Int] == ["256": 100])
        let nobody = try bench(1, "--connections", "2", "--requests", "10")
        #expect(nobody.status != 0)
        #expect(nobody.errors.contains("connection 0: cannot connect: 127.0.0.1:1"))
    }
}

/// A tmux session running one command: keys typed in, the screen read back.
final class Terminal {
    let socket = "iproto-test-\(UInt32.random(in: 0...UInt32.max))"

    init(_ command: String) throws {
        let status = spawnAndWait(["/usr/bin/tmux", "-L", socket, "new-session", "-d", "-s", "repl",
                                   "-x", "120", "-y", "50", command])
        guard status == 0 else { throw TestSocketError("tmux new-session exited with \(status)") }
    }

    deinit { _ = try? tmux(["kill-server"]) }

    @discardableResult
    func tmux(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        try ServerProcess.run("/usr/bin/tmux", ["-L", socket] + arguments)
    }

    /// Types keys: text, or tmux key names such as Enter and Tab.
    func type(_ keys: String...) throws { try tmux(["send-keys", "-t", "repl"] + keys) }

    var screen: String { (try? tmux(["capture-pane", "-p", "-t", "repl"]).output) ?? "" }

    /// Waits until the screen shows `text`.
    func shows(_ text: String, within seconds: Double = 10) -> Bool {
        eventually(seconds) { screen.contains(text) }
    }
}

/// `iproto repl` driven through a terminal (tmux): what a person would see.
@Suite struct ReplTests {
    @Test func editingCompletionHistoryAndServerRestart() throws {
        var server: ServerProcess? = try ServerProcess()
        let port = server!.port
        let history = FileManager.default.temporaryDirectory.appendingPathComponent("iproto-history-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: history) }
        let terminal = try Terminal("\(ServerProcess.siblingPath("iproto")) repl --port \(port) --history \(history)")
        #expect(terminal.shows("type help"))

        try terminal.type("replace 5 hello world", "Enter")
        #expect(terminal.shows("ok"))
        try terminal.type("rea", "Tab")  // completes the command (tmux trims the space it adds)
        #expect(terminal.shows("iproto> read\n"))
        try terminal.type("5", "Enter")
        #expect(terminal.shows("\"hello world\""))
        try terminal.type("sta", "Tab", "read-o", "Tab", "Enter")  // completes the command and its state
        #expect(terminal.shows("iproto> state read-only"))
        try terminal.type("replace 5 x", "Enter")
        #expect(terminal.shows("error: server error 256: storage is read-only"))
        try terminal.type("help", "Enter")
        #expect(terminal.shows("raw FUNC_ID [HEX]"))

        // The server restarts on the same port; the session carries on.
        #expect(server!.stop() == 0)
        server = try ServerProcess(["--listen", "127.0.0.1:\(port)"])
        let recovered = eventually(15) {
            _ = try? terminal.type("read 5", "Enter")
            return terminal.shows("iproto> read 5\n\"\"", within: 1)
        }
        #expect(recovered, "screen:\n\(terminal.screen)")

        try terminal.type("quit", "Enter")
        // libedit's history file escapes spaces as \040.
        #expect(eventually {
            (try? String(contentsOfFile: history, encoding: .utf8))?.contains(#"replace\0405\040hello\040world"#) == true
        })
    }
}
