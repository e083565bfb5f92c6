import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// `iproto files`: the file store's gateway (iproto-filegw) from the command line.
struct FilesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files",
        abstract: "Talk to the file store's gateway (iproto-filegw): put, get, ls, rm, nodes, rebalance, repair, orphans.",
        discussion: """
            Every form takes --gateway URL (default http://127.0.0.1:8080). Files stream from \
            and to disk in pieces: a 100 GiB file needs no more memory than a small one.
            Exit status:
              0   ok
              1   not found (get, rm, repair of an unknown node)
              2   refused or failed (the gateway's message on standard error)
              64  bad usage
            """,
        subcommands: [FilesPut.self, FilesGet.self, FilesList.self, FilesRemove.self, FilesNodes.self, FilesAddNode.self,
                      FilesRebalance.self, FilesRepair.self, FilesOrphans.self]
    )
}

struct GatewayOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The gateway's base URL.", valueName: "url"))
    var gateway = "http://127.0.0.1:8080"

    @Option(help: "Seconds a whole transfer may take.")
    var timeout = 3600.0

    func validate() throws {
        guard gateway.hasPrefix("http://") || gateway.hasPrefix("https://") else {
            throw ValidationError("--gateway must be an http:// or https:// URL, got \"\(gateway)\"")
        }
        guard timeout.isFinite, timeout > 0 else { throw ValidationError("--timeout must be a positive number of seconds") }
    }

    func url(_ path: String) -> String { (gateway.hasSuffix("/") ? String(gateway.dropLast()) : gateway) + path }

    static func filePath(_ name: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%;")
        return "/files/" + (name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name)
    }

    /// Runs `request`; on an error status prints the gateway's message and exits 1 (404) or 2.
    func send(_ request: HTTPClientRequest, body: (HTTPClientResponse) async throws -> Void = { _ in }) async throws {
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let response = try await http.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            if (200..<300).contains(response.status.code) {
                try await body(response)
            } else {
                let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
                let message = (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["error"] as? String ?? text
                FileHandle.standardError.write(Data("iproto: \(response.status.code) \(message)\n".utf8))
                try await http.shutdown()
                throw ExitCode(response.status.code == 404 ? 1 : 2)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            FileHandle.standardError.write(Data("iproto: \(error)\n".utf8))
            try? await http.shutdown()
            throw ExitCode(2)
        }
        try await http.shutdown()
    }

    /// Prints a JSON body, pretty.
    func printJSON(_ response: HTTPClientResponse) async throws {
        let data = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        let object = try JSONSerialization.jsonObject(with: data)
        let pretty = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        FileHandle.standardOutput.write(pretty + Data("\n".utf8))
    }
}

struct FilesPut: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Store a local file (or standard input, -) under NAME.")

    @OptionGroup var options: GatewayOptions
    @Argument(help: "The local file, or - for standard input.") var file: String
    @Argument(help: "The name in the store (a path like a/b/c.txt).") var name: String

    func run() async throws {
        let handle: FileHandle
        var length: Int64?
        if file == "-" {
            handle = FileHandle.standardInput
        } else {
            guard let opened = FileHandle(forReadingAtPath: file) else {
                FileHandle.standardError.write(Data("iproto: cannot open \(file)\n".utf8))
                throw ExitCode(2)
            }
            handle = opened
            length = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.int64Value
        }
        var request = HTTPClientRequest(url: options.url(GatewayOptions.filePath(name)))
        request.method = .PUT
        let chunks = AsyncStream<ByteBuffer> { continuation in
            while true {
                let data = handle.readData(ofLength: 1 << 20)
                if data.isEmpty { break }
                continuation.yield(ByteBuffer(bytes: data))
            }
            continuation.finish()
        }
        request.body = .stream(chunks, length: length.map { .known($0) } ?? .unknown)
        try await options.send(request) { try await options.printJSON($0) }
    }
}

struct FilesGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Write the file NAME to a local file, or to standard output.")

    @OptionGroup var options: GatewayOptions
    @Argument(help: "The name in the store.") var name: String
    @Argument(help: "The local file to write; default: standard output.") var file: String?

    func run() async throws {
        let output: FileHandle
        if let file {
            guard FileManager.default.createFile(atPath: file + ".part", contents: nil), let opened = FileHandle(forWritingAtPath: file + ".part") else {
                FileHandle.standardError.write(Data("iproto: cannot write \(file)\n".utf8))
                throw ExitCode(2)
            }
            output = opened
        } else {
            output = FileHandle.standardOutput
        }
        let request = HTTPClientRequest(url: options.url(GatewayOptions.filePath(name)))
        do {
            try await options.send(request) { response in
                var received: Int64 = 0
                for try await buffer in response.body {
                    received += Int64(buffer.readableBytes)
                    output.write(Data(buffer.readableBytesView))
                }
                // A response cut short (a block the gateway could not read) is an error, not a file.
                if let expected = response.headers.first(name: "Content-Length").flatMap(Int64.init), expected != received {
                    FileHandle.standardError.write(Data("iproto: the download broke off after \(received) of \(expected) bytes\n".utf8))
                    throw ExitCode(2)
                }
            }
        } catch {
            if let file { try? FileManager.default.removeItem(atPath: file + ".part") }
            throw error
        }
        if let file {
            try output.close()
            _ = try? FileManager.default.removeItem(atPath: file)
            try FileManager.default.moveItem(atPath: file + ".part", toPath: file)
        }
    }
}

struct FilesList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the files whose names start with PREFIX: size, ETag, name.")

    @OptionGroup var options: GatewayOptions
    @Argument(help: "The prefix; default: every file.") var prefix = ""

    func run() async throws {
        var after: String?
        while true {
            var query = "?limit=1000&prefix=" + (prefix.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
            if let after { query += "&after=" + (after.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") }
            var page: [[String: Any]] = []
            try await options.send(HTTPClientRequest(url: options.url("/files" + query))) { response in
                let data = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
                page = (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
            }
            for file in page {
                let size = (file["size"] as? NSNumber)?.int64Value ?? 0
                print("\(String(size).leftPadded(12))  \((file["etag"] as? String ?? "").leftPadded(22))  \(file["name"] as? String ?? "")")
            }
            guard page.count == 1000, let last = page.last?["name"] as? String else { return }
            after = last
        }
    }
}

struct FilesRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete the file NAME (exit 1 when absent).")

    @OptionGroup var options: GatewayOptions
    @Argument(help: "The name in the store.") var name: String

    func run() async throws {
        var request = HTTPClientRequest(url: options.url(GatewayOptions.filePath(name)))
        request.method = .DELETE
        try await options.send(request)
    }
}

struct FilesNodes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nodes", abstract: "The storage nodes: address, capacity, used bytes, parts, liveness (JSON).")

    @OptionGroup var options: GatewayOptions

    func run() async throws {
        try await options.send(HTTPClientRequest(url: options.url("/nodes"))) { try await options.printJSON($0) }
    }
}

struct FilesAddNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-node", abstract: "Register the storage node at ADDRESS (HOST:PORT) with the gateway.")

    @OptionGroup var options: GatewayOptions
    @Argument(help: "The node's iproto address.") var address: String

    func run() async throws {
        var request = HTTPClientRequest(url: options.url("/nodes"))
        request.method = .POST
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["address": address])))
        try await options.send(request) { try await options.printJSON($0) }
    }
}

/// Starts an admin operation and follows its progress until it finishes.
private func follow(_ operation: String, start path: String, options: GatewayOptions) async throws {
    var request = HTTPClientRequest(url: options.url(path))
    request.method = .POST
    try await options.send(request)
    while true {
        var progress: [String: Any] = [:]
        try await options.send(HTTPClientRequest(url: options.url("/admin/" + operation))) { response in
            progress = (try JSONSerialization.jsonObject(with: Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)) as? [String: Any]) ?? [:]
        }
        let moved = progress["parts_moved"] as? Int ?? 0, bytes = (progress["bytes_moved"] as? NSNumber)?.int64Value ?? 0
        var line = "\(operation): \(moved) parts moved (\(bytes) bytes)"
        if let left = progress["parts_left"] as? Int { line += ", \(left) left" }
        if let spread = progress["spread"] as? Double { line += String(format: ", spread %.4f", spread) }
        if let failed = progress["failed_parts"] as? Int, failed > 0 { line += ", \(failed) failed" }
        print(line)
        fflush(nil)
        if progress["running"] as? Bool != true {
            if let error = progress["error"] as? String {
                FileHandle.standardError.write(Data("iproto: \(operation) stopped: \(error)\n".utf8))
                throw ExitCode(2)
            }
            return
        }
        try await Task.sleep(for: .seconds(1))
    }
}

struct FilesRebalance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebalance",
        abstract: "Move parts from the fullest nodes to the emptiest until max fill ÷ min fill is within --target; prints progress.")

    @OptionGroup var options: GatewayOptions
    @Option(help: "The spread to reach (max fill ÷ min fill over live nodes).") var target = 1.02

    func run() async throws {
        try await follow("rebalance", start: "/admin/rebalance?target=\(target)", options: options)
    }
}

struct FilesRepair: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair", abstract: "Rebuild every part of a lost node (its id, from iproto files nodes) onto the others; prints progress.")

    @OptionGroup var options: GatewayOptions
    @Argument(help: "The lost node's id.") var node: String

    func run() async throws {
        try await follow("repair", start: "/admin/repair?node=" + (node.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? node), options: options)
    }
}

struct FilesOrphans: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orphans",
        abstract: "Sweep every live node for parts the metadata does not know there, and delete them; prints what was found (JSON).")

    @OptionGroup var options: GatewayOptions

    func run() async throws {
        var request = HTTPClientRequest(url: options.url("/admin/orphans"))
        request.method = .POST
        try await options.send(request) { try await options.printJSON($0) }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
