import Foundation
import Logging
import NIOCore
import PostgresNIO

/// ``FileMetadataStore`` in PostgreSQL, for several gateways sharing one store
/// (`--metadata postgres://USER:PASSWORD@HOST:PORT/DATABASE`). The same tables as
/// ``SQLiteMetadataStore``; ids come from one row updated in place, so every
/// gateway draws from one sequence. Every call is one statement or one
/// transaction, committed (synced by the server) before it returns.
public final class PostgresMetadataStore: FileMetadataStore {
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger

    private enum State: Int64 {
        case pending = 0, live = 1, garbage = 2
    }

    /// Connects to `url` and creates the tables if they are missing.
    public init(url: String, logger: Logger) async throws {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
            let host = components.host, let user = components.user
        else {
            throw MetadataError("--metadata \(url) is not postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
        }
        let database = components.path.isEmpty ? user : String(components.path.dropFirst())
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password, database: database, tls: .disable)
        configuration.options.maximumConnections = 16
        client = PostgresClient(configuration: configuration)
        let client = self.client
        runner = Task { await client.run() }
        self.logger = logger
        try await migrate()
    }

    deinit { runner.cancel() }

    private func migrate() async throws {
        // A lock so that gateways starting together do not race on CREATE TABLE.
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(72731)", logger: logger)
            try await connection.query("CREATE TABLE IF NOT EXISTS sequence (next BIGINT NOT NULL)", logger: logger)
            try await connection.query("INSERT INTO sequence (next) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM sequence)", logger: logger)
            try await connection.query("CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, address TEXT NOT NULL, joined DOUBLE PRECISION NOT NULL)", logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS files (
                    name BYTEA PRIMARY KEY, file_id BIGINT NOT NULL UNIQUE, size BIGINT NOT NULL, etag TEXT NOT NULL,
                    created DOUBLE PRECISION NOT NULL, parity INTEGER NOT NULL, shard_bytes INTEGER NOT NULL)
                """, logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS parts (
                    part_id BIGINT PRIMARY KEY, file_id BIGINT NOT NULL, idx INTEGER NOT NULL, node TEXT NOT NULL,
                    length BIGINT NOT NULL, state INTEGER NOT NULL,
                    since DOUBLE PRECISION NOT NULL DEFAULT EXTRACT(EPOCH FROM now()))
                """, logger: logger)
            try await connection.query("CREATE INDEX IF NOT EXISTS parts_by_file ON parts (file_id)", logger: logger)
            try await connection.query("CREATE INDEX IF NOT EXISTS parts_by_node ON parts (node, state, part_id)", logger: logger)
            try await connection.query("CREATE INDEX IF NOT EXISTS parts_by_state ON parts (state)", logger: logger)
        }
    }

    // Names are stored as their UTF-8 bytes (BYTEA), so that they order and compare
    // byte for byte whatever the database's collation, as in SQLite.
    private static func bytes(_ name: String) -> ByteBuffer { ByteBuffer(string: name) }
    private static func name(_ bytes: ByteBuffer) -> String { String(buffer: bytes) }

    public func nodes() async throws -> [NodeRecord] {
        var result: [NodeRecord] = []
        for try await (id, address, joined) in try await client.query("SELECT id, address, joined FROM nodes ORDER BY joined, id", logger: logger)
            .decode((String, String, Double).self)
        {
            result.append(NodeRecord(id: id, address: address, joined: joined))
        }
        return result
    }

    public func saveNode(_ node: NodeRecord) async throws {
        try await client.query(
            "INSERT INTO nodes (id, address, joined) VALUES (\(node.id), \(node.address), \(node.joined)) ON CONFLICT (id) DO UPDATE SET address = excluded.address",
            logger: logger)
    }

    public func beginUpload(fileID: UInt64?, _ parts: [PendingPart]) async throws -> [PartRecord] {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection -> [PartRecord] in
            // One transaction with the ids it takes: a commit fewer per upload.
            let count = PendingPart.idCount(parts, fileID: fileID)
            var taken: Int64?
            for try await first in try await connection.query("UPDATE sequence SET next = next + \(count) RETURNING next - \(count)", logger: logger)
                .decode(Int64.self) { taken = first }
            guard let first = taken else { throw MetadataError("the id sequence row is missing") }
            let records = PendingPart.records(parts, fileID: fileID, first: first)
            for part in records {
                try await connection.query(
                    "INSERT INTO parts (part_id, file_id, idx, node, length, state) VALUES (\(Int64(part.partID)), \(Int64(part.fileID)), \(part.index), \(part.node), \(part.length), \(State.pending.rawValue))",
                    logger: logger)
            }
            return records
        }
    }

    public func commitUpload(_ file: FileRecord) async throws -> FileRecord? {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection -> FileRecord? in
            // Each part turns live in place, with its final length. One missing means another
            // gateway's start abandoned the upload: then it must not appear (the throw rolls back).
            for part in file.parts {
                var changed: Int64 = 0
                for try await count in try await connection.query(
                    """
                    WITH done AS (UPDATE parts SET state = \(State.live.rawValue), length = \(part.length)
                                  WHERE part_id = \(Int64(part.partID)) AND file_id = \(Int64(file.fileID)) AND state = \(State.pending.rawValue)
                                  RETURNING 1)
                    SELECT COUNT(*) FROM done
                    """, logger: logger
                ).decode(Int64.self) { changed = count }
                guard changed == 1 else { throw MetadataError("upload \(file.fileID) was abandoned: its parts are no longer pending") }
            }
            let replaced = try await Self.file(named: file.name, connection, logger)
            if let replaced {
                try await connection.query(
                    "UPDATE parts SET state = \(State.garbage.rawValue) WHERE file_id = \(Int64(replaced.fileID))", logger: logger)
                try await connection.query("DELETE FROM files WHERE name = \(Self.bytes(file.name))", logger: logger)
            }
            try await connection.query(
                "INSERT INTO files (name, file_id, size, etag, created, parity, shard_bytes) VALUES (\(Self.bytes(file.name)), \(Int64(file.fileID)), \(file.size), \(file.etag), \(file.created), \(file.parityParts), \(file.shardBytes))",
                logger: logger)
            return replaced
        }
    }

    public func abortUpload(fileID: UInt64) async throws {
        try await client.query(
            "UPDATE parts SET state = \(State.garbage.rawValue) WHERE file_id = \(Int64(fileID)) AND state = \(State.pending.rawValue)",
            logger: logger)
    }

    /// Uploads pending this long belong to a gateway that died: no live one takes
    /// that long without its calls to the nodes timing out.
    public static let abandonedAfterSeconds = 3600.0

    /// Shared by several gateways: a starting one cannot tell its own dead uploads
    /// from another's live ones, so it abandons only uploads pending past
    /// ``abandonedAfterSeconds``; ``garbage(limit:)`` sweeps them the same way
    /// while gateways run.
    public func abandonPendingUploads() async throws -> Int {
        var count = 0
        for try await changed in try await client.query(
            """
            WITH stale AS (UPDATE parts SET state = \(State.garbage.rawValue)
                           WHERE state = \(State.pending.rawValue) AND since < EXTRACT(EPOCH FROM now()) - \(Self.abandonedAfterSeconds)
                           RETURNING 1)
            SELECT COUNT(*) FROM stale
            """, logger: logger
        ).decode(Int64.self) { count = Int(changed) }
        return count
    }

    public func file(named name: String) async throws -> FileRecord? {
        let logger = self.logger
        return try await client.withConnection { connection in try await Self.file(named: name, connection, logger) }
    }

    public func file(id: UInt64) async throws -> FileRecord? {
        let logger = self.logger
        return try await client.withConnection { connection -> FileRecord? in
            let rows = try await connection.query(
                "SELECT name, file_id, size, etag, created, parity, shard_bytes FROM files WHERE file_id = \(Int64(id))", logger: logger)
            guard let file = try await Self.records(rows).first else { return nil }
            return try await Self.withParts(file, connection, logger)
        }
    }

    private static func file(named name: String, _ connection: PostgresConnection, _ logger: Logger) async throws -> FileRecord? {
        let rows = try await connection.query(
            "SELECT name, file_id, size, etag, created, parity, shard_bytes FROM files WHERE name = \(bytes(name))", logger: logger)
        guard let file = try await records(rows).first else { return nil }
        return try await withParts(file, connection, logger)
    }

    private static func records(_ rows: PostgresRowSequence) async throws -> [FileRecord] {
        var files: [FileRecord] = []
        for try await (name, fileID, size, etag, created, parity, shardBytes) in rows.decode((ByteBuffer, Int64, Int64, String, Double, Int, Int).self) {
            files.append(FileRecord(
                name: Self.name(name), fileID: UInt64(fileID), size: size, etag: etag, created: created, parityParts: parity,
                shardBytes: shardBytes, parts: []))
        }
        return files
    }

    private static func withParts(_ file: FileRecord, _ connection: PostgresConnection, _ logger: Logger) async throws -> FileRecord {
        var file = file
        file.parts = try await parts(try await connection.query(
            "SELECT part_id, file_id, idx, node, length FROM parts WHERE file_id = \(Int64(file.fileID)) AND state = \(State.live.rawValue) ORDER BY idx",
            logger: logger))
        return file
    }

    private static func parts(_ rows: PostgresRowSequence) async throws -> [PartRecord] {
        var parts: [PartRecord] = []
        for try await (partID, fileID, index, node, length) in rows.decode((Int64, Int64, Int, String, Int64).self) {
            parts.append(PartRecord(partID: UInt64(partID), fileID: UInt64(fileID), index: index, node: node, length: length))
        }
        return parts
    }

    public func files(prefix: String, after: String?, limit: Int) async throws -> [FileRecord] {
        let prefixBytes = Self.bytes(prefix), afterBytes = Self.bytes(after ?? ""), prefixLength = Int32(prefix.utf8.count)
        return try await Self.records(try await client.query(
            """
            SELECT name, file_id, size, etag, created, parity, shard_bytes FROM files
            WHERE substring(name FROM 1 FOR \(prefixLength)) = \(prefixBytes) AND name > \(afterBytes) ORDER BY name LIMIT \(limit)
            """, logger: logger))
    }

    public func deleteFile(named name: String) async throws -> FileRecord? {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection -> FileRecord? in
            guard let file = try await Self.file(named: name, connection, logger) else { return nil }
            try await connection.query("UPDATE parts SET state = \(State.garbage.rawValue) WHERE file_id = \(Int64(file.fileID))", logger: logger)
            try await connection.query("DELETE FROM files WHERE name = \(Self.bytes(name))", logger: logger)
            return file
        }
    }

    public func garbage(limit: Int) async throws -> [PartRecord] {
        _ = try await abandonPendingUploads()
        return try await Self.parts(try await client.query(
            "SELECT part_id, file_id, idx, node, length FROM parts WHERE state = \(State.garbage.rawValue) ORDER BY part_id LIMIT \(limit)",
            logger: logger))
    }

    public func forgetGarbage(_ partIDs: [UInt64]) async throws {
        guard !partIDs.isEmpty else { return }
        let ids = partIDs.map { Int64($0) }
        try await client.query("DELETE FROM parts WHERE part_id = ANY(\(ids)) AND state = \(State.garbage.rawValue)", logger: logger)
    }

    public func recordedParts(_ partIDs: [UInt64], on node: String) async throws -> Set<UInt64> {
        guard !partIDs.isEmpty else { return [] }
        let ids = partIDs.map { Int64($0) }
        var recorded: Set<UInt64> = []
        for try await id in try await client.query("SELECT part_id FROM parts WHERE part_id = ANY(\(ids)) AND node = \(node)", logger: logger).decode(Int64.self) {
            recorded.insert(UInt64(id))
        }
        return recorded
    }

    public func liveBytesByNode() async throws -> [String: Int64] {
        var bytes: [String: Int64] = [:]
        for try await (node, sum) in try await client.query(
            "SELECT node, SUM(length)::BIGINT FROM parts WHERE state = \(State.live.rawValue) GROUP BY node", logger: logger
        ).decode((String, Int64).self) {
            bytes[node] = sum
        }
        return bytes
    }

    public func liveParts(on node: String, after: UInt64, limit: Int) async throws -> [PartRecord] {
        try await Self.parts(try await client.query(
            "SELECT part_id, file_id, idx, node, length FROM parts WHERE node = \(node) AND state = \(State.live.rawValue) AND part_id > \(Int64(after)) ORDER BY part_id LIMIT \(limit)",
            logger: logger))
    }

    public func movePart(_ part: PartRecord, to node: String, newPartID: UInt64) async throws -> Bool {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection -> Bool in
            var moved = 0
            for try await count in try await connection.query(
                "WITH old AS (UPDATE parts SET state = \(State.garbage.rawValue) WHERE part_id = \(Int64(part.partID)) AND state = \(State.live.rawValue) RETURNING 1) SELECT COUNT(*) FROM old",
                logger: logger
            ).decode(Int64.self) { moved = Int(count) }
            guard moved == 1 else { return false }
            var made = 0
            for try await count in try await connection.query(
                "WITH copy AS (UPDATE parts SET state = \(State.live.rawValue), node = \(node) WHERE part_id = \(Int64(newPartID)) AND state = \(State.pending.rawValue) RETURNING 1) SELECT COUNT(*) FROM copy",
                logger: logger
            ).decode(Int64.self) { made = Int(count) }
            guard made == 1 else { throw MetadataError("part \(newPartID) is not a pending copy") }
            return true
        }
    }

    public func counts() async throws -> (files: Int, parts: Int) {
        var files = 0, parts = 0
        for try await count in try await client.query("SELECT COUNT(*) FROM files", logger: logger).decode(Int64.self) { files = Int(count) }
        for try await count in try await client.query("SELECT COUNT(*) FROM parts WHERE state = \(State.live.rawValue)", logger: logger).decode(Int64.self) {
            parts = Int(count)
        }
        return (files, parts)
    }
}
