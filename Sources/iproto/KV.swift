import ArgumentParser
import Foundation
import IProto
import KVClient
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `iproto kv`: the key-value cluster, interactively (the default) or one call at a time.
struct KVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv",
        abstract: "Talk to the key-value cluster (iproto-kvd): a REPL, or get/set/delete/nodes one at a time.",
        discussion: """
            Without a subcommand: a REPL with line editing, history (~/.iproto_kv_history) \
            and tab completion. Its commands (the words are case-insensitive):
              GET KEY          print the value (a str quoted, a bin as hex) or (nil)
              SET KEY VALUE    store VALUE (the rest of the line; quotes optional)
              DELETE KEY       delete KEY (deleting an absent key is ok)
              nodes            the nodes (id, address, role, alive), the leader,
                               the replication factor and the warnings
              help             the list
              quit             leave (or Ctrl-D)
            The REPL heartbeats the cluster and prints what the client notices, as lines \
            starting with "--" (node switches, a new leader, warnings, nodes joining), \
            as they happen, above the line being edited.

            Keys are UUID4s (8-4-4-4-12 hex). Every form takes --node, any nodes' \
            addresses (calls follow the leader), and --timeout, the seconds to wait for one \
            node's reply.

            One-shot, for scripts: iproto kv get KEY | set KEY VALUE | delete KEY | nodes
            Exit status:
              0   ok (get prints the value's bytes and a newline)
              1   get: the key is absent (nothing on standard output)
              2   refused, or no node answered: nothing was done
              3   outcome unknown: a write that may or may not have taken effect
              64  bad usage
            Errors go to standard error: "iproto: " and why, with the code's name.
            """,
        subcommands: [KVRepl.self, KVGet.self, KVSet.self, KVDelete.self, KVNodes.self],
        defaultSubcommand: KVRepl.self
    )
}

/// Where the cluster is and how long to wait, shared by every `iproto kv` form.
struct KVOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Nodes of the cluster, comma-separated; any node will do.", valueName: "host:port[,host:port...]"))
    var node = "127.0.0.1:4001"

    @Option(help: "Seconds to wait for one node's reply.")
    var timeout = 2.0

    var nodes: [String] {
        node.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        guard !nodes.isEmpty else { throw ValidationError("--node needs at least one HOST:PORT") }
        for address in nodes {
            guard let colon = address.lastIndex(of: ":"), colon != address.startIndex,
                  let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port)
            else { throw ValidationError("--node takes HOST:PORT with a port 1-65535, got \"\(address)\"") }
        }
        guard timeout.isFinite, timeout >= 0.001, timeout <= 86_400 else {
            throw ValidationError("--timeout must be a number of seconds from 0.001 to 86400, got \(timeout)")
        }
    }

    func client(heartbeatInterval: Double? = nil) -> KVClient {
        var configuration = KVClientConfiguration()
        configuration.callTimeout = .milliseconds(Int64(timeout * 1000))
        if let heartbeatInterval { configuration.heartbeatInterval = .milliseconds(Int64(heartbeatInterval * 1000)) }
        return KVClient(nodes: nodes, configuration: configuration)
    }
}

private func writeStandardError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}

/// Runs a one-shot call: a failure goes to standard error, with exit 2 (nothing was done) or 3 (outcome unknown).
private func performKV<T>(_ client: KVClient, _ operation: () async throws(KVClientError) -> T) async throws -> T {
    defer { client.close() }
    do {
        return try await operation()
    } catch {
        writeStandardError("iproto: \(error)\n")
        if case .outcomeUnknown = error { throw ExitCode(3) }
        throw ExitCode(2)
    }
}

struct KVGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print KEY's value (its bytes, then a newline); exit 1 when KEY is absent."
    )

    @OptionGroup var options: KVOptions
    @Argument(help: "The key, a UUID4.") var key: String

    func run() async throws {
        let client = options.client()
        guard let value = try await performKV(client, { () async throws(KVClientError) in try await client.get(key) }) else {
            writeStandardError("(nil)\n")
            throw ExitCode(1)
        }
        FileHandle.standardOutput.write(Data(value.bytes + [0x0a]))
    }
}

struct KVSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Store VALUE (as a str) under KEY.")

    @OptionGroup var options: KVOptions
    @Argument(help: "The key, a UUID4.") var key: String
    @Argument(help: "The value.") var value: String

    func run() async throws {
        let client = options.client()
        try await performKV(client) { () async throws(KVClientError) in try await client.set(key, .text(value)) }
        print("ok")
    }
}

struct KVDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete KEY (an absent key is ok).")

    @OptionGroup var options: KVOptions
    @Argument(help: "The key, a UUID4.") var key: String

    func run() async throws {
        let client = options.client()
        try await performKV(client) { () async throws(KVClientError) in try await client.delete(key) }
        print("ok")
    }
}

struct KVNodes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes",
        abstract: "Print the cluster's nodes (id, address, role, alive), its leader, replication factor and warnings."
    )

    @OptionGroup var options: KVOptions

    func run() async throws {
        let client = options.client()
        let status = try await performKV(client) { () async throws(KVClientError) in try await client.heartbeat() }
        print(nodesTable(status))
    }
}

/// The `nodes` output: a table of the nodes, then the leader, the replication factor and the warnings.
func nodesTable(_ status: ClusterStatus) -> String {
    let rows = [["ID", "ADDRESS", "ROLE", "ALIVE"]]
        + status.nodes.map { [$0.id, $0.address, $0.role, $0.alive ? "yes" : "no"] }
    let widths = (0..<4).map { column in rows.map { $0[column].count }.max() ?? 0 }
    var lines = rows.map { row in
        row.enumerated().map { column, cell in
            column == 3 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    lines.append("leader: \(status.leader ?? "(none)")")
    lines.append("replication factor: \(status.replicationFactor)")
    if status.warnings.isEmpty { lines.append("warnings: none") }
    lines += status.warnings.map { "warning: \($0)" }
    return lines.joined(separator: "\n")
}

/// A client event as the REPL prints it.
func eventLines(_ event: KVClientEvent) -> [String] {
    switch event {
    case .switchedNode(_, let to, let why): ["-- switched to \(to): \(why)"]
    case .leaderChanged(let leader): ["-- leader is now \(leader)"]
    case .warnings(let warnings): warnings.map { "-- warning: \($0)" }
    case .nodeJoined(let address): ["-- node joined: \(address)"]
    }
}

/// Events the REPL has yet to print; each arrival also writes a byte to a pipe, which wakes
/// the line editor so that it prints them at once, above the line being edited.
private final class PendingEvents: Sendable {
    private let lines = Mutex<[String]>([])
    /// The wake pipe's ends, both non-blocking (-1 if it could not be made: events wait for the next prompt).
    let readFD: Int32
    private let writeFD: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        }
        (readFD, writeFD) = (fds[0], fds[1])
    }

    deinit {
        if readFD >= 0 { close(readFD) }
        if writeFD >= 0 { close(writeFD) }
    }

    func append(_ new: [String]) {
        lines.withLock { $0 += new }
        var byte: UInt8 = 1
        if writeFD >= 0 { _ = write(writeFD, &byte, 1) }
    }

    func drain() -> [String] { lines.withLock { lines in defer { lines = [] }; return lines } }
}

/// Called by the line editor when events arrived: hides the line being edited and prints them
/// (the terminal is in raw mode, hence "\r\n"); true when it printed, so the line is redrawn.
private func printPendingEvents(_ pending: PendingEvents) -> Bool {
    let lines = pending.drain()
    guard !lines.isEmpty else { return false }
    let text = "\r\u{1b}[K" + lines.map { $0 + "\r\n" }.joined()
    _ = text.withCString { write(STDOUT_FILENO, $0, strlen($0)) }
    return true
}

struct KVRepl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repl",
        abstract: "An interactive session (the default): GET, SET, DELETE, nodes; type help."
    )

    @OptionGroup var options: KVOptions

    @Option(help: "Seconds between heartbeats, which keep the node list and the leader current.")
    var heartbeatInterval = 1.0

    @Option(help: "History file (default: ~/.iproto_kv_history; empty for none).")
    var history: String?

    func validate() throws {
        guard heartbeatInterval.isFinite, heartbeatInterval >= 0.01, heartbeatInterval <= 86_400 else {
            throw ValidationError("--heartbeat-interval must be a number of seconds from 0.01 to 86400, got \(heartbeatInterval)")
        }
    }

    static let help = """
        GET KEY            print the value (a str quoted, a bin as hex), or (nil)
        SET KEY VALUE      store VALUE (the rest of the line; quotes optional)
        DELETE KEY         delete KEY
        nodes              the nodes, the leader, the replication factor, warnings
        help               this list
        quit               leave (or Ctrl-D)
        Command words are case-insensitive; keys are UUID4s. Lines starting with -- are the client's news.
        """

    static let words = ["get", "set", "delete", "nodes", "help", "quit", "exit"]

    func run() async throws {
        let client = options.client(heartbeatInterval: heartbeatInterval)
        defer { client.close() }
        let pending = PendingEvents()
        let pump = Task {
            for await event in client.events { pending.append(eventLines(event)) }
        }
        defer { pump.cancel() }
        client.startHeartbeats()

        let path = history ?? ProcessInfo.processInfo.environment["HOME"].map { "\($0)/.iproto_kv_history" }
        let editor = LineEditor(history: path?.isEmpty == false ? path : nil,
                                commands: Self.words + Self.words.map { $0.uppercased() },
                                argumentCommand: "", arguments: [])
        print("iproto kv \(options.nodes.joined(separator: ",")) — type help")
        while true {
            for line in pending.drain() { print(line) }
            let line = pending.readFD < 0 ? editor.read(prompt: "kv> ")
                : editor.read(prompt: "kv> ", wakeFD: pending.readFD) { printPendingEvents(pending) }
            guard let line else { break }
            let words = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
            guard let command = words.first?.lowercased() else { continue }
            if command == "quit" || command == "exit" { break }
            print(await execute(command, Array(words.dropFirst()), line: line, client: client))
        }
    }

    /// One command's output, or why it failed; never throws, so the session goes on.
    private func execute(_ command: String, _ arguments: [String], line: String, client: KVClient) async -> String {
        do throws(KVClientError) {
            switch (command, arguments.count) {
            case ("help", _):
                return Self.help
            case ("get", 1):
                return try await client.get(arguments[0])?.description ?? "(nil)"
            case ("set", 2):
                try await client.set(arguments[0], .text(unquoted(arguments[1])))
                return "ok"
            case ("delete", 1):
                try await client.delete(arguments[0])
                return "ok"
            case ("nodes", 0):
                return nodesTable(try await client.heartbeat())
            default:
                return "error: unknown command or wrong arguments: \(line) (type help)"
            }
        } catch {
            return "error: \(error)"
        }
    }

    private func unquoted(_ text: String) -> String {
        text.count >= 2 && text.hasPrefix("\"") && text.hasSuffix("\"") ? String(text.dropFirst().dropLast()) : text
    }
}
