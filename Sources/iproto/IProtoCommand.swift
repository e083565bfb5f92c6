import ArgumentParser
import IProto
import IProtoClient
import IProtoStorage

#if canImport(Glibc)
import Glibc
#endif

@main
struct IProtoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iproto",
        abstract: "Call an iproto server: the storage API, state switches, or any function with a raw body; or the key-value cluster (kv).",
        subcommands: [Call.self, State.self, Raw.self, Repl.self, Bench.self, KVCommand.self, FilesCommand.self]
    )
}

/// Where the server is, shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server host.")
    var host = "127.0.0.1"

    @Option(help: "Server port.")
    var port = 3301

    @Option(help: "Seconds to wait for a reply.")
    var timeout = 5.0

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1-65535, got \(port)") }
        // Int64 milliseconds hold up to ~292 million years; a day is more than any reply needs.
        guard timeout.isFinite, timeout >= 0.001, timeout <= 86_400 else {
            throw ValidationError("--timeout must be a number of seconds from 0.001 to 86400, got \(timeout)")
        }
    }

    func client() -> IProtoClient {
        var configuration = ClientConfiguration()
        configuration.callTimeout = .milliseconds(Int64(timeout * 1000))
        configuration.connectTimeout = configuration.callTimeout
        return IProtoClient(host: host, port: port, configuration: configuration)
    }
}

/// Runs a call, turning client errors into a one-line message and exit status 1.
func perform<T>(_ operation: () async throws(ClientError) -> T) async throws -> T {
    do {
        return try await operation()
    } catch {
        let line = "iproto: \(error)\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        throw ExitCode.failure
    }
}

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call the storage API.",
        subcommands: [Read.self, Replace.self]
    )

    struct Read: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the string stored at INDEX (0-999).")

        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Slot index, 0-999.") var index: Int

        func run() async throws {
            let client = connection.client()
            print(try await perform { () async throws(ClientError) in try await client.read(index) })
        }
    }

    struct Replace: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store VALUE (at most 256 bytes) at INDEX (0-999).")

        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Slot index, 0-999.") var index: Int
        @Argument(help: "The string to store.") var value: String

        func run() async throws {
            let client = connection.client()
            try await perform { () async throws(ClientError) in try await client.replace(index, with: value) }
            print("ok")
        }
    }
}

struct State: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Switch the storage state.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "read-only, read-write or maintenance.") var state: StorageState

    func run() async throws {
        let client = connection.client()
        try await perform { () async throws(ClientError) in try await client.switchState(to: state) }
        print("ok")
    }
}

struct Raw: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call any function with a hex-encoded MessagePack body; print the reply as hex and decoded.",
        discussion: "Example: iproto raw 0x00020002 05   (STORAGE_READ of index 5)"
    )

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "func_id, decimal or 0x-prefixed hex.") var funcID: String
    @Argument(help: "Body as hex digits (spaces allowed); empty for no body.") var body: String = ""

    func validate() throws {
        guard parseFuncID(funcID) != nil else { throw ValidationError("FUNC_ID must be a 32-bit number, got \"\(funcID)\"") }
        guard parseHex(body) != nil else { throw ValidationError("HEXBODY must be pairs of hex digits, got \"\(body)\"") }
    }

    func run() async throws {
        let client = connection.client()
        let reply = try await perform { () async throws(ClientError) in
            try await client.call(parseFuncID(funcID)!, body: parseHex(body)!)
        }
        let name = reply.returnCode.name ?? reply.returnCode.storageName ?? "service code"
        print("return_code \(reply.returnCode.rawValue) (\(name))")
        print("body \(reply.body.hexDigits(separator: " "))")
        print("value \(describe(reply.body))")
        if reply.returnCode != .ok { throw ExitCode.failure }
    }
}

func parseFuncID(_ text: String) -> UInt32? {
    text.lowercased().hasPrefix("0x") ? UInt32(text.dropFirst(2).filter { $0 != "_" }, radix: 16) : UInt32(text)
}

func parseHex(_ text: String) -> [UInt8]? {
    let digits = Array(text.filter { !$0.isWhitespace })
    guard digits.count.isMultiple(of: 2) else { return nil }
    var bytes: [UInt8] = []
    for index in stride(from: 0, to: digits.count, by: 2) {
        guard let byte = UInt8(String(digits[index...index + 1]), radix: 16) else { return nil }
        bytes.append(byte)
    }
    return bytes
}

/// The body's MessagePack values, or why it is not MessagePack.
func describe(_ body: [UInt8]) -> String {
    var reader = MessagePackReader(body)
    var values: [String] = []
    do {
        while !reader.isAtEnd { values.append(try reader.readValue().description) }
    } catch {
        return "(not MessagePack: \(error))"
    }
    return values.isEmpty ? "(empty)" : values.joined(separator: " ")
}

extension StorageState: ExpressibleByArgument {}
