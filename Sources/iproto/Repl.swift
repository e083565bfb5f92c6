import ArgumentParser
import Foundation
import IProto
import IProtoClient
import IProtoStorage

struct Repl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An interactive session: line editing, history, tab completion; type help.",
        discussion: "It keeps working across server restarts: a failed call reconnects on the next one."
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "History file (default: ~/.iproto_history; empty for none).")
    var history: String?

    static let help = """
        read INDEX              print the string at INDEX (0-999)
        replace INDEX VALUE     store VALUE (the rest of the line; quotes optional)
        state STATE             switch to read-only, read-write or maintenance
        raw FUNC_ID [HEX]       call any function with a hex MessagePack body
        help                    this list
        quit                    leave (or Ctrl-D)
        """

    func run() async throws {
        var configuration = ClientConfiguration()
        configuration.callTimeout = .milliseconds(Int64(connection.timeout * 1000))
        configuration.connectTimeout = configuration.callTimeout
        configuration.maxReconnectBackoff = .seconds(1)
        let client = IProtoClient(host: connection.host, port: connection.port, configuration: configuration)
        let path = history ?? ProcessInfo.processInfo.environment["HOME"].map { "\($0)/.iproto_history" }
        let editor = LineEditor(history: path?.isEmpty == false ? path : nil,
                                commands: ["read", "replace", "state", "raw", "help", "quit", "exit"],
                                argumentCommand: "state", arguments: StorageState.allCases.map(\.rawValue))
        print("iproto \(connection.host):\(connection.port) — type help")
        while let line = editor.read(prompt: "iproto> ") {
            let words = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
            guard let command = words.first else { continue }
            if command == "quit" || command == "exit" { break }
            print(await execute(command, Array(words.dropFirst()), line: line, client: client))
        }
    }

    /// One command's output, or the reason it failed; never throws, so the session goes on.
    private func execute(_ command: String, _ arguments: [String], line: String, client: IProtoClient) async -> String {
        do throws(ClientError) {
            switch (command, arguments.count) {
            case ("help", _):
                return Self.help
            case ("read", 1):
                guard let index = Int(arguments[0]) else { return "error: INDEX must be a number" }
                return MessagePackValue.stringBytes(try await client.read(index: index)).description
            case ("replace", 2):
                guard let index = Int(arguments[0]) else { return "error: INDEX must be a number" }
                try await client.replace(index, with: unquoted(arguments[1]))
                return "ok"
            case ("state", 1):
                guard let state = StorageState(rawValue: arguments[0]) else {
                    return "error: STATE must be read-only, read-write or maintenance"
                }
                try await client.switchState(to: state)
                return "ok"
            case ("raw", 1...2):
                guard let funcID = parseFuncID(arguments[0]), let body = parseHex(arguments.count > 1 ? arguments[1] : "")
                else { return "error: usage: raw FUNC_ID [HEX]" }
                let reply = try await client.call(funcID, body: body)
                let name = reply.returnCode.name ?? reply.returnCode.storageName ?? "service code"
                return "return_code \(reply.returnCode.rawValue) (\(name)) \(describe(reply.body))"
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
