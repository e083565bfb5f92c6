import Foundation
import GRDB
import SQLiteSupport

/// ``FileMetadataStore`` in one SQLite file, `metadata.sqlite` in the gateway's
/// `--data-dir`, every commit synced (``DurableSQLite``).
public final class SQLiteMetadataStore: FileMetadataStore {
    public let path: String
    private let database: DatabasePool

    /// Part states: pending (an upload in flight), live (a committed file's), garbage (to delete on its node).
    private enum State: Int64 {
        case pending = 0, live = 1, garbage = 2
    }

    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = (directory as NSString).appendingPathComponent("metadata.sqlite")
        database = try DurableSQLite.pool(path: path, configuration: DurableSQLite.configuration(path: path, autoCheckpointPages: 4096))
        try Self.migrator.migrate(database)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE sequence (next INTEGER NOT NULL);
                INSERT INTO sequence (next) VALUES (1);
                CREATE TABLE nodes (id TEXT PRIMARY KEY, address TEXT NOT NULL, joined REAL NOT NULL);
                CREATE TABLE files (
                    name TEXT PRIMARY KEY, file_id INTEGER NOT NULL UNIQUE, size INTEGER NOT NULL, etag TEXT NOT NULL,
                    created REAL NOT NULL, parity INTEGER NOT NULL, shard_bytes INTEGER NOT NULL);
                CREATE TABLE parts (
                    part_id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, idx INTEGER NOT NULL, node TEXT NOT NULL,
                    length INTEGER NOT NULL, state INTEGER NOT NULL);
                CREATE INDEX parts_by_file ON parts (file_id);
                CREATE INDEX parts_by_node ON parts (node, state, part_id);
                CREATE INDEX parts_by_state ON parts (state);
                """)
        }
        // A file's parts are looked up by file and state (every GET, commit and abort): with
        // parts_by_file on file_id alone, SQLite chose parts_by_state and scanned every live
        // part of the store for each, O(files) per GET.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: """
                DROP INDEX parts_by_file;
                CREATE INDEX parts_by_file ON parts (file_id, state, idx);
                """)
        }
        return migrator
    }

    public func nodes() async throws -> [NodeRecord] {
        try await database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, address, joined FROM nodes ORDER BY joined, id").map {
                NodeRecord(id: $0["id"], address: $0["address"], joined: $0["joined"])
            }
        }
    }

    public func saveNode(_ node: NodeRecord) async throws {
        try await database.write { db in
            try db.execute(
                sql: "INSERT INTO nodes (id, address, joined) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET address = excluded.address",
                arguments: [node.id, node.address, node.joined])
        }
    }

    public func beginUpload(fileID: UInt64?, _ parts: [PendingPart]) async throws -> [PartRecord] {
        try await database.write { db in
            // One transaction with the ids it takes: a commit (an fsync) fewer per upload.
            let count = PendingPart.idCount(parts, fileID: fileID)
            let first = try Int64.fetchOne(db.cachedStatement(sql: "UPDATE sequence SET next = next + ? RETURNING next - ?"), arguments: [count, count])!
            let records = PendingPart.records(parts, fileID: fileID, first: first)
            let insert = try db.cachedStatement(sql: "INSERT INTO parts (part_id, file_id, idx, node, length, state) VALUES (?, ?, ?, ?, ?, ?)")
            for part in records {
                try insert.execute(arguments: [Int64(part.partID), Int64(part.fileID), part.index, part.node, part.length, State.pending.rawValue])
            }
            return records
        }
    }

    public func commitUpload(_ file: FileRecord) async throws -> FileRecord? {
        try await database.write { db in
            // Each part turns live in place, with its final length (a chunked upload's are known
            // only at its end). One missing means another start abandoned the upload: then it
            // must not appear, and the throw rolls the transaction back.
            let commit = try db.cachedStatement(sql: Self.commitPartSQL)
            for part in file.parts {
                try commit.execute(arguments: [State.live.rawValue, part.length, Int64(part.partID), Int64(file.fileID), State.pending.rawValue])
                guard db.changesCount == 1 else { throw MetadataError("upload \(file.fileID) was abandoned: its parts are no longer pending") }
            }
            let replaced = try Self.file(named: file.name, db)
            if let replaced {
                try db.execute(sql: "UPDATE parts SET state = ? WHERE file_id = ?", arguments: [State.garbage.rawValue, Int64(replaced.fileID)])
                try db.execute(sql: "DELETE FROM files WHERE name = ?", arguments: [file.name])
            }
            try db.cachedStatement(sql: "INSERT INTO files (\(Self.fileColumns)) VALUES (?, ?, ?, ?, ?, ?, ?)").execute(
                arguments: [file.name, Int64(file.fileID), file.size, file.etag, file.created, file.parityParts, file.shardBytes])
            return replaced
        }
    }

    public func abortUpload(fileID: UInt64) async throws {
        try await database.write { db in
            try db.execute(
                sql: "UPDATE parts SET state = ? WHERE file_id = ? AND state = ?",
                arguments: [State.garbage.rawValue, Int64(fileID), State.pending.rawValue])
        }
    }

    public func abandonPendingUploads() async throws -> Int {
        try await database.write { db in
            try db.execute(sql: "UPDATE parts SET state = ? WHERE state = ?", arguments: [State.garbage.rawValue, State.pending.rawValue])
            return db.changesCount
        }
    }

    /// Every GET's lookup: one statement, prepared once per connection (cached), and no
    /// transaction around it (a single statement reads one snapshot); rows are read by
    /// column position (GRDB matches names case-insensitively, string by string).
    public func file(named name: String) async throws -> FileRecord? {
        try await database.unsafeRead { db in try Self.file(named: name, db) }
    }

    public func file(id: UInt64) async throws -> FileRecord? {
        try await database.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(Self.fileColumns) FROM files WHERE file_id = ?", arguments: [Int64(id)]) else { return nil }
            return try Self.withParts(Self.record(row), db)
        }
    }

    /// A file by name with its live parts (GETs, and commits inside their transaction).
    private static func file(named name: String, _ db: Database) throws -> FileRecord? {
        let rows = try Row.fetchAll(db.cachedStatement(sql: fileWithPartsSQL), arguments: [State.live.rawValue, name])
        guard let first = rows.first else { return nil }
        var file = record(first)
        file.parts = rows.compactMap { $0.hasNull(atIndex: 7) ? nil : part($0, from: 7) }
        return file
    }

    private static func withParts(_ file: FileRecord, _ db: Database) throws -> FileRecord {
        var file = file
        let statement = try db.cachedStatement(sql: filePartsSQL)
        file.parts = try Row.fetchAll(statement, arguments: [Int64(file.fileID), State.live.rawValue]).map(part)
        return file
    }

    /// The columns ``record(_:)`` reads, in its order.
    private static let fileColumns = "name, file_id, size, etag, created, parity, shard_bytes"

    private static func record(_ row: Row) -> FileRecord {
        FileRecord(
            name: row[0], fileID: UInt64(row[1] as Int64), size: row[2], etag: row[3], created: row[4],
            parityParts: row[5], shardBytes: row[6], parts: [])
    }

    /// The columns ``part(_:)`` reads, in its order.
    private static let partColumns = "part_id, file_id, idx, node, length"

    /// A file's parts in one state, in order (through the index on (file_id, state, idx):
    /// tests check the query plans).
    static let filePartsSQL = "SELECT \(partColumns) FROM parts WHERE file_id = ? AND state = ? ORDER BY idx"
    /// A pending part of an upload made live with its final length, by its id (the primary key).
    static let commitPartSQL = "UPDATE parts SET state = ?, length = ? WHERE part_id = ? AND file_id = ? AND state = ?"
    /// A file by name with its parts in one state, in order: columns 0...6 the file's, 7... the part's (NULL if none).
    static let fileWithPartsSQL = """
        SELECT \(fileColumns.split(separator: ", ").map { "files.\($0)" }.joined(separator: ", ")), \
        \(partColumns.split(separator: ", ").map { "parts.\($0)" }.joined(separator: ", ")) \
        FROM files LEFT JOIN parts ON parts.file_id = files.file_id AND parts.state = ? WHERE files.name = ? ORDER BY parts.idx
        """

    private static func part(_ row: Row) -> PartRecord { part(row, from: 0) }

    private static func part(_ row: Row, from first: Int) -> PartRecord {
        PartRecord(
            partID: UInt64(row[first] as Int64), fileID: UInt64(row[first + 1] as Int64), index: row[first + 2], node: row[first + 3],
            length: row[first + 4])
    }

    public func files(prefix: String, after: String?, limit: Int) async throws -> [FileRecord] {
        try await database.read { db in
            // Names compare as bytes (SQLite's BINARY collation), so the prefix is a range.
            try Row.fetchAll(
                db, sql: "SELECT \(Self.fileColumns) FROM files WHERE substr(name, 1, length(?)) = ? AND name > ? ORDER BY name LIMIT ?",
                arguments: [prefix, prefix, after ?? "", limit]
            ).map(Self.record)
        }
    }

    public func deleteFile(named name: String) async throws -> FileRecord? {
        try await database.write { db in
            guard let file = try Self.file(named: name, db) else { return nil }
            try db.execute(sql: "UPDATE parts SET state = ? WHERE file_id = ?", arguments: [State.garbage.rawValue, Int64(file.fileID)])
            try db.execute(sql: "DELETE FROM files WHERE name = ?", arguments: [name])
            return file
        }
    }

    public func garbage(limit: Int) async throws -> [PartRecord] {
        try await database.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.partColumns) FROM parts WHERE state = ? ORDER BY part_id LIMIT ?", arguments: [State.garbage.rawValue, limit]).map(Self.part)
        }
    }

    public func forgetGarbage(_ partIDs: [UInt64]) async throws {
        try await database.write { db in
            for id in partIDs {
                try db.execute(sql: "DELETE FROM parts WHERE part_id = ? AND state = ?", arguments: [Int64(id), State.garbage.rawValue])
            }
        }
    }

    public func recordedParts(_ partIDs: [UInt64], on node: String) async throws -> Set<UInt64> {
        try await database.read { db in
            var recorded: Set<UInt64> = []
            for id in partIDs where try Bool.fetchOne(db, sql: "SELECT 1 FROM parts WHERE part_id = ? AND node = ?", arguments: [Int64(id), node]) != nil {
                recorded.insert(id)
            }
            return recorded
        }
    }

    public func liveBytesByNode() async throws -> [String: Int64] {
        try await database.read { db in
            var bytes: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT node, SUM(length) AS bytes FROM parts WHERE state = ? GROUP BY node", arguments: [State.live.rawValue]) {
                bytes[row["node"]] = row["bytes"]
            }
            return bytes
        }
    }

    public func liveParts(on node: String, after: UInt64, limit: Int) async throws -> [PartRecord] {
        try await database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT \(Self.partColumns) FROM parts WHERE node = ? AND state = ? AND part_id > ? ORDER BY part_id LIMIT ?",
                arguments: [node, State.live.rawValue, Int64(after), limit]
            ).map(Self.part)
        }
    }

    public func movePart(_ part: PartRecord, to node: String, newPartID: UInt64) async throws -> Bool {
        try await database.write { db in
            // Only if the part is still live where it was (its file may have been deleted or replaced meanwhile).
            try db.execute(
                sql: "UPDATE parts SET state = ? WHERE part_id = ? AND state = ?",
                arguments: [State.garbage.rawValue, Int64(part.partID), State.live.rawValue])
            guard db.changesCount == 1 else { return false }
            try db.execute(
                sql: "UPDATE parts SET state = ?, node = ? WHERE part_id = ? AND state = ?",
                arguments: [State.live.rawValue, node, Int64(newPartID), State.pending.rawValue])
            guard db.changesCount == 1 else { throw MetadataError("part \(newPartID) is not a pending copy") }
            return true
        }
    }

    public func counts() async throws -> (files: Int, parts: Int) {
        try await database.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM files")!,
             try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM parts WHERE state = ?", arguments: [State.live.rawValue])!)
        }
    }
}
