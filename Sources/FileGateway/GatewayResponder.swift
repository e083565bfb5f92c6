import FileMetadata
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The gateway's HTTP API (docs/file-store.md, "HTTP API"), dispatched by hand
/// rather than by a router: a file's name is the raw rest of the path after
/// `/files/`, checked byte for byte (empty segments, `.`, `..`, NUL, escapes),
/// which a router that splits and normalises paths would hide.
public struct GatewayResponder: HTTPResponder {
    public typealias Context = BasicRequestContext
    let store: FileStore
    let mover: PartMover
    /// The Prometheus text of every metric.
    let metricsText: @Sendable () -> String

    public init(store: FileStore, metricsText: @escaping @Sendable () -> String) {
        self.store = store
        mover = PartMover(store: store)
        self.metricsText = metricsText
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        do {
            return try await route(request)
        } catch let error as GatewayError {
            return Self.error(error)
        }
    }

    private func route(_ request: Request) async throws -> Response {
        let path = request.uri.path
        let method = request.method
        if path.hasPrefix("/files/") {
            let name = try Self.fileName(path.dropFirst("/files/".count))
            switch method {
            case .put: return try await put(name, request)
            case .get: return try await get(name, request, body: true)
            case .head: return try await get(name, request, body: false)
            case .delete:
                guard try await store.delete(name) else { throw GatewayError(.notFound, "no file named \(name)") }
                return Response(status: .noContent)
            default: return Self.methodNotAllowed("GET, HEAD, PUT, DELETE")
            }
        }
        switch (path, method) {
        case ("/files", .get): return try await list(request)
        case ("/files", .put): throw GatewayError(.badRequest, "the file name is missing: PUT /files/NAME")
        case ("/nodes", .get): return Self.json(store.nodes.statuses().map(NodeJSON.init))
        case ("/nodes", .post): return try await register(request)
        case ("/admin/rebalance", .post):
            var target = 1.02
            if let text = request.uri.queryParameters["target"] {
                guard let value = Double(text), value >= 1, value.isFinite else { throw GatewayError(.badRequest, "target \(text) must be a number ≥ 1 (max fill ÷ min fill)") }
                target = value
            }
            guard mover.startRebalance(target: target) else { return Self.json(mover.status("rebalance"), status: .conflict) }
            return Self.json(mover.status("rebalance"), status: .accepted)
        case ("/admin/repair", .post):
            guard let node = request.uri.queryParameters["node"].map(String.init) else { throw GatewayError(.badRequest, "name the lost node: POST /admin/repair?node=ID") }
            guard store.nodes.statuses().contains(where: { $0.id == node }) else { throw GatewayError(.notFound, "no node \(node)") }
            guard mover.startRepair(node: node) else { return Self.json(mover.status("repair"), status: .conflict) }
            return Self.json(mover.status("repair"), status: .accepted)
        case ("/admin/orphans", .post): return Self.json(await store.sweepOrphans())
        case ("/admin/rebalance", .get): return Self.json(mover.status("rebalance"))
        case ("/admin/repair", .get): return Self.json(mover.status("repair"))
        case ("/metrics", .get):
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: metricsText())))
        case ("/", .get):
            let files = try await store.list(prefix: "", after: nil, limit: 200)
            let html = StatusPage.render(nodes: store.nodes.statuses(), files: files, layout: store.layout.description)
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
        case ("/nodes", _), ("/admin/rebalance", _), ("/admin/repair", _): return Self.methodNotAllowed("GET, POST")
        case ("/files", _), ("/metrics", _), ("/", _): return Self.methodNotAllowed("GET")
        case ("/admin/orphans", _): return Self.methodNotAllowed("POST")
        default: throw GatewayError(.notFound, "no such resource: \(path)")
        }
    }

    static func fileName(_ rawPath: Substring) throws(GatewayError) -> FileName {
        guard let bytes = FileName.percentDecoded(rawPath) else { throw GatewayError(.badRequest, "the file name has a malformed %-escape") }
        do { return try FileName(bytes: bytes) } catch { throw GatewayError(.badRequest, error.description) }
    }

    // MARK: files

    private func put(_ name: FileName, _ request: Request) async throws(GatewayError) -> Response {
        var length: Int64?
        if let header = request.headers[.contentLength] {
            guard let value = Int64(header), value >= 0 else { throw GatewayError(.badRequest, "Content-Length \"\(header)\" is not a byte count") }
            length = value
        }
        let stored = try await store.upload(name: name, contentLength: length, body: request.body)
        var response = Self.json(FileJSON(stored.file), status: stored.replaced ? .ok : .created)
        response.headers[.eTag] = stored.file.etag
        return response
    }

    private func get(_ name: FileName, _ request: Request, body: Bool) async throws -> Response {
        guard let file = try await store.file(named: name) else { throw GatewayError(.notFound, "no file named \(name)") }
        if request.uri.queryParameters["layout"] != nil { return Self.json(LayoutJSON(file, nodes: store.nodes.statuses())) }
        var headers: HTTPFields = [
            .eTag: file.etag, .acceptRanges: "bytes", .contentType: "application/octet-stream",
            .lastModified: HTTPDate.format(secondsSince1970: file.created),
        ]
        if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == file.etag || $0 == "*" }) {
            return Response(status: .notModified, headers: headers)
        }
        var status = HTTPResponse.Status.ok
        var range = 0..<file.size
        // A Range whose If-Range names another version gets the whole file.
        if request.headers[.ifRange].map({ $0 == file.etag }) ?? true {
            switch ByteRange.parse(request.headers[.range], size: file.size) {
            case .whole: break
            case .partial(let part):
                range = part
                status = .partialContent
                headers[.contentRange] = "bytes \(part.lowerBound)-\(part.upperBound - 1)/\(file.size)"
            case .unsatisfiable:
                headers[.contentRange] = "bytes */\(file.size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            }
        }
        headers[.contentLength] = "\(range.count)"
        guard body, !range.isEmpty else { return Response(status: status, headers: headers) }
        let store = self.store, bytes = range
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: Int(bytes.count)) { writer in
            // A block that cannot be read even from parity throws here: the response is cut
            // off short of its Content-Length, never completed with wrong bytes.
            try await store.read(file, range: bytes) { pieces in try await writer.write(contentsOf: pieces) }
            try await writer.finish(nil)
        })
    }

    private func list(_ request: Request) async throws(GatewayError) -> Response {
        let query = request.uri.queryParameters
        // Hummingbird has already decoded the query's %-escapes: decoding again would turn a name's
        // own "%41" into "A".
        let prefix = query["prefix"].map(String.init) ?? ""
        let after = query["after"].map(String.init)
        var limit = 1000
        if let text = query["limit"] {
            guard let value = Int(text), (1...10_000).contains(value) else { throw GatewayError(.badRequest, "limit \(text) is out of range 1...10000") }
            limit = value
        }
        return Self.json(try await store.list(prefix: prefix, after: after, limit: limit).map(FileJSON.init))
    }

    private func register(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 64 << 10)
        struct Registration: Decodable { var address: String }
        guard let registration = try? JSONDecoder().decode(Registration.self, from: Data(buffer: body)) else {
            throw GatewayError(.badRequest, "the body must be JSON {\"address\": \"HOST:PORT\"}")
        }
        let id = try await store.nodes.register(address: registration.address)
        guard let status = store.nodes.statuses().first(where: { $0.id == id }) else { throw GatewayError(.internalError, "node \(id) vanished") }
        return Self.json(NodeJSON(status))
    }

    // MARK: bodies

    struct FileJSON: Encodable {
        var name: String
        var size: Int64
        var etag: String
        var created: Double
        var parity: Int
        init(_ file: FileRecord) {
            name = file.name
            size = file.size
            etag = file.etag
            created = file.created
            parity = file.parityParts
        }
    }

    /// `GET /files/NAME?layout`: where each part of a file is.
    struct LayoutJSON: Encodable {
        struct Part: Encodable {
            var index: Int
            var kind: String
            var part_id: UInt64
            var node: String
            var address: String?
            var alive: Bool
            var length: Int64
        }

        var name: String
        var size: Int64
        var etag: String
        var shard_bytes: Int
        var parity: Int
        var parts: [Part]

        init(_ file: FileRecord, nodes: [StorageNodes.Status]) {
            name = file.name
            size = file.size
            etag = file.etag
            shard_bytes = file.shardBytes
            parity = file.parityParts
            parts = file.parts.map { part in
                let node = nodes.first { $0.id == part.node }
                return Part(
                    index: part.index, kind: part.index < 5 ? "data" : "parity", part_id: part.partID, node: part.node,
                    address: node?.address, alive: node?.alive ?? false, length: part.length)
            }
        }
    }

    struct NodeJSON: Encodable {
        var id: String
        var address: String
        var capacity_bytes: Int64
        var used_bytes: Int64
        var live_bytes: Int64
        var reserved_bytes: Int64
        var parts: Int
        var read_only_volumes: Int
        var alive: Bool
        var fill: Double
        init(_ node: StorageNodes.Status) {
            id = node.id
            address = node.address
            capacity_bytes = node.capacityBytes
            used_bytes = node.usedBytes
            live_bytes = node.liveBytes
            reserved_bytes = node.reservedBytes
            parts = node.parts
            read_only_volumes = node.readOnlyVolumes
            alive = node.alive
            fill = node.capacityBytes > 0 ? Double(node.liveBytes) / Double(node.capacityBytes) : 0
        }
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("null".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ error: GatewayError) -> Response {
        json(["error": error.description], status: HTTPResponse.Status(code: error.status.rawValue))
    }

    static func methodNotAllowed(_ allowed: String) -> Response {
        var response = json(["error": "method not allowed; use \(allowed)"], status: .methodNotAllowed)
        response.headers[.allow] = allowed
        return response
    }
}
