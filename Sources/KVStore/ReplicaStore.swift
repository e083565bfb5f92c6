import Foundation
import GRDB
import SQLiteSupport
public import KVReplication

/// A replica's durable records: one SQLite file, `DIR/kv.sqlite`, in WAL mode with
/// `synchronous=FULL`, so that every commit is fsynced before it returns. Nothing this store
/// reports as done is lost to a crash or power cut: a replica acknowledges KV_REPLICA_WRITE only
/// after `apply` returns.
///
/// Tables:
/// - `records(key TEXT PRIMARY KEY, version INTEGER, kind INTEGER, value BLOB)`: per key, the record
///   with the highest version seen, tombstones included (their value is empty).
/// - `meta(name TEXT PRIMARY KEY, value)`: `highest_epoch` (an INTEGER, written only by `apply`
///   and `raiseEpoch`) and free-form strings (`node_id`, `cluster`, `etcd`).
///
/// Versions are UInt64 but SQLite's INTEGER is signed 64-bit; they are stored as themselves, which
/// keeps SQL's order equal to `Version`'s as long as the epoch is below 2^31 (2^31 etcd revisions).
/// Larger versions and epochs are refused with `.outOfRange`, never wrapped.
///
/// Thread-safe: GRDB's `DatabasePool`, one writer connection and concurrent readers (WAL lets
/// reads run beside a commit, so repair's scans and the metrics' counts never delay a replica
/// write); every call may block on the disk, so callers keep it off event-loop threads.
///
/// Checkpoints (copying the log's pages into the database file, then an fsync of it) are kept
/// off the write path too: ``checkpoint()`` runs them on a connection of their own, and a commit
/// checkpoints only when the log has grown past `autoCheckpointPages` (the background has fallen
/// far behind). SQLite's default, a checkpoint inside whichever commit passes 1,000 pages, cost
/// that commit tens of milliseconds every few seconds under load.
public final class ReplicaStore: Sendable {
    /// The highest epoch (and so the highest version epoch) the store can hold.
    public static let maximumEpoch = Epoch(UInt64(Int32.max))

    /// The database file, `directory/kv.sqlite`.
    public let path: String

    let database: DatabasePool
    /// The connection ``checkpoint()`` runs on, so that it takes no writer's or reader's turn.
    private let checkpointer: DatabaseQueue
    /// Log pages (4 KiB) past which a commit checkpoints itself: 16 MiB.
    public static let autoCheckpointPages = 4096

    /// Opens `directory/kv.sqlite`, creating the directory and the file as needed.
    public init(directory: String) throws(StoreError) {
        let path = (directory as NSString).appendingPathComponent("kv.sqlite")
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .directory(path: directory, message: "\(error.localizedDescription)")
        }
        let configuration = DurableSQLite.configuration(path: path, autoCheckpointPages: Self.autoCheckpointPages)
        do {
            database = try DurableSQLite.pool(path: path, configuration: configuration)
            try Self.migrator.migrate(database)
            checkpointer = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw Self.failure(error, path: path, operation: "opening the replica store")
        }
    }

    /// Closes the file; later calls fail. (Dropping the last reference also closes it.)
    public func close() throws(StoreError) {
        try run("closing the replica store") {
            try checkpointer.close()
            try database.close()
        }
    }

    /// Copies what it can of the write-ahead log into the database file without waiting for
    /// readers or writers (a passive checkpoint), on its own connection; call it every second
    /// or so. Returns the log's size and how much of it is now in the file, in pages.
    @discardableResult
    public func checkpoint() throws(StoreError) -> (logPages: Int, checkpointedPages: Int) {
        try run("checkpointing the write-ahead log") {
            try checkpointer.writeWithoutTransaction { db in
                let result = try db.checkpoint(.passive)
                return (Int(result.walFrameCount), Int(result.checkpointedFrameCount))
            }
        }
    }

    // MARK: Records

    /// Applies a batch of replica writes from the leader of `epoch`, in one transaction that is
    /// fsynced before this returns.
    ///
    /// Refuses the whole batch with `.staleEpoch` if `epoch` is below the highest epoch persisted;
    /// otherwise persists `epoch` if it is higher, then stores each record whose version is
    /// greater than the stored one for its key (a tombstone is a record like any other, so an older
    /// value never brings a deleted key back). Returns how many records changed. Applying the same
    /// batch twice, or batches out of order, leaves the same state.
    @discardableResult
    public func apply(_ records: [ReplicaRecord], epoch: Epoch) throws(StoreError) -> Int {
        try Self.check(epoch)
        for record in records {
            try Self.check(record.version.epoch, of: record)
            if record.kind == .tombstone && !record.value.isEmpty {
                throw .invalidArgument("tombstone of \(record.key) at version \(record.version) carries \(record.value.count) bytes")
            }
        }
        return try write("applying \(records.count) records at epoch \(epoch)") { db in
            let have = try Self.highestEpoch(db)
            if epoch < have { throw StoreError.staleEpoch(have: have, got: epoch) }
            if epoch > have { try Self.setHighestEpoch(epoch, db) }
            let upsert = try db.cachedStatement(sql: """
                INSERT INTO records (key, version, kind, value) VALUES (?, ?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET version = excluded.version, kind = excluded.kind, value = excluded.value
                WHERE excluded.version > records.version
                """)
            var changed = 0
            for record in records {
                try upsert.execute(arguments: [
                    record.key, Int64(record.version.rawValue), Int64(record.kind.rawValue), Data(record.value),
                ])
                changed += db.changesCount
            }
            return changed
        }
    }

    /// The record stored for `key` (a canonical key), tombstones included; nil if never written.
    public func read(_ key: String) throws(StoreError) -> ReplicaRecord? {
        try run("reading \(key)") {
            try database.read { db in
                try Row.fetchOne(db, sql: "SELECT key, version, kind, value FROM records WHERE key = ?", arguments: [key])
                    .map { row throws(StoreError) in try self.record(row) }
            }
        }
    }

    /// Up to `limit` keys after `after` in ascending order, with their versions, tombstones
    /// included: what KV_REPLICA_SCAN answers and repair compares. `after: ""` starts at the
    /// beginning; the next page starts after the last key returned.
    public func scan(after: String, limit: Int) throws(StoreError) -> [(key: String, version: Version)] {
        guard limit > 0 else { return [] }
        return try run("scanning after \"\(after)\"") {
            try database.read { db in
                try Row.fetchAll(db, sql: "SELECT key, version FROM records WHERE key > ? ORDER BY key LIMIT ?",
                                 arguments: [after, limit])
                    .map { row throws(StoreError) in (key: row[0] as String, version: try self.version(row[1] as Int64)) }
            }
        }
    }

    /// The versions of every key in `after` < key <= `through`, tombstones included: one
    /// query for what a page of a peer's `scan` covers, which repair compares against.
    public func versions(after: String, through: String) throws(StoreError) -> [String: Version] {
        try run("reading versions after \"\(after)\" through \"\(through)\"") {
            var versions: [String: Version] = [:]
            try database.read { db in
                let rows = try Row.fetchCursor(db, sql: "SELECT key, version FROM records WHERE key > ? AND key <= ?",
                                               arguments: [after, through])
                while let row = try rows.next() { versions[row[0] as String] = try self.version(row[1] as Int64) }
            }
            return versions
        }
    }

    /// Like `scan`, with the whole records: what repair copies to a replica that lacks them.
    public func records(after: String, limit: Int) throws(StoreError) -> [ReplicaRecord] {
        guard limit > 0 else { return [] }
        return try run("reading records after \"\(after)\"") {
            try database.read { db in
                try Row.fetchAll(db, sql: "SELECT key, version, kind, value FROM records WHERE key > ? ORDER BY key LIMIT ?",
                                 arguments: [after, limit])
                    .map { row throws(StoreError) in try self.record(row) }
            }
        }
    }

    // MARK: Epoch

    /// The highest epoch persisted (`Epoch.zero` for a new store).
    public var highestEpoch: Epoch {
        get throws(StoreError) {
            try run("reading the highest epoch") { try database.read { db in try Self.highestEpoch(db) } }
        }
    }

    /// Persists `epoch` if it is higher than the highest persisted (fsynced before this returns)
    /// and returns the highest persisted afterwards. A lower `epoch` is not an error: it changes
    /// nothing, and the higher one is returned.
    @discardableResult
    public func raiseEpoch(_ epoch: Epoch) throws(StoreError) -> Epoch {
        try Self.check(epoch)
        return try write("raising the epoch to \(epoch)") { db in
            let have = try Self.highestEpoch(db)
            guard epoch > have else { return have }
            try Self.setHighestEpoch(epoch, db)
            return epoch
        }
    }

    // MARK: Meta

    /// A free-form string stored under `name` (`node_id`, `cluster`, `etcd`), or nil.
    public func meta(_ name: String) throws(StoreError) -> String? {
        try run("reading meta \(name)") {
            try database.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE name = ?", arguments: [name]) }
        }
    }

    /// Stores `value` under `name` durably, or removes the name when `value` is nil.
    /// `highest_epoch` is reserved: only `apply` and `raiseEpoch` move it, and only up.
    public func setMeta(_ name: String, _ value: String?) throws(StoreError) {
        guard name != Self.highestEpochName else {
            throw .invalidArgument("meta \(Self.highestEpochName) is set only by raising the epoch")
        }
        try write("writing meta \(name)") { db in
            if let value {
                try db.execute(sql: "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                               arguments: [name, value])
            } else {
                try db.execute(sql: "DELETE FROM meta WHERE name = ?", arguments: [name])
            }
        }
    }

    // MARK: Metrics

    /// How many keys hold a value (tombstones not counted). Counts the table: O(keys).
    public var count: Int {
        get throws(StoreError) {
            try run("counting keys") {
                try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records WHERE kind != 2") ?? 0 }
            }
        }
    }

    /// Bytes on disk: the database file plus its write-ahead log (which holds recent commits until
    /// a checkpoint copies them into the file).
    public var bytesOnDisk: Int {
        get throws(StoreError) {
            var total = 0
            for file in [path, path + "-wal"] where FileManager.default.fileExists(atPath: file) {
                do {
                    let attributes = try FileManager.default.attributesOfItem(atPath: file)
                    total += (attributes[.size] as? NSNumber)?.intValue ?? 0
                } catch {
                    throw .directory(path: file, message: "\(error.localizedDescription)")
                }
            }
            return total
        }
    }

    // MARK: Internals

    static let highestEpochName = "highest_epoch"

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // STRICT: SQLite refuses a value of the wrong type instead of storing it.
            try db.execute(sql: """
                CREATE TABLE records (
                    key TEXT PRIMARY KEY NOT NULL,
                    version INTEGER NOT NULL,
                    kind INTEGER NOT NULL,
                    value BLOB NOT NULL
                ) STRICT, WITHOUT ROWID;
                CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value ANY) STRICT, WITHOUT ROWID;
                """)
        }
        return migrator
    }

    private static func check(_ epoch: Epoch, of record: ReplicaRecord? = nil) throws(StoreError) {
        guard epoch > maximumEpoch else { return }
        if let record {
            throw .outOfRange("version \(record.version) of \(record.key) has epoch \(epoch), above the store's maximum \(maximumEpoch)")
        }
        throw .outOfRange("epoch \(epoch) is above the store's maximum \(maximumEpoch)")
    }

    private static func highestEpoch(_ db: Database) throws -> Epoch {
        let value = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE name = ?", arguments: [highestEpochName]) ?? 0
        return Epoch(UInt64(max(0, value)))
    }

    private static func setHighestEpoch(_ epoch: Epoch, _ db: Database) throws {
        try db.execute(sql: "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                       arguments: [highestEpochName, Int64(epoch.rawValue)])
    }

    private func version(_ stored: Int64) throws(StoreError) -> Version {
        guard stored >= 0 else { throw .corrupt(path: path, message: "negative version \(stored)") }
        return Version(rawValue: UInt64(stored))
    }

    private func record(_ row: Row) throws(StoreError) -> ReplicaRecord {
        let key: String = row[0]
        let kindNumber: Int64 = row[2]
        guard let kind = UInt8(exactly: kindNumber).flatMap(ValueKind.init(rawValue:)) else {
            throw .corrupt(path: path, message: "key \(key) has kind \(kindNumber)")
        }
        let value: Data = row[3]
        return ReplicaRecord(key: key, version: try version(row[1]), kind: kind, value: [UInt8](value))
    }

    /// Runs `body` in one IMMEDIATE transaction (the write lock taken up front, so a second
    /// connection waits on the busy timeout instead of failing at its first write).
    private func write<T>(_ operation: @autoclosure () -> String, _ body: (Database) throws -> T) throws(StoreError) -> T {
        try run(operation()) {
            try database.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        }
    }

    private func run<T>(_ operation: @autoclosure () -> String, _ body: () throws -> T) throws(StoreError) -> T {
        do {
            return try body()
        } catch {
            throw Self.failure(error, path: path, operation: operation())
        }
    }

    private static func failure(_ error: any Error, path: String, operation: String) -> StoreError {
        switch error {
        case let error as StoreError: return error
        case let error as DatabaseError:
            return .sqlite(path: path, operation: operation, code: error.extendedResultCode.rawValue,
                           message: error.message ?? "\(error.resultCode)")
        default: return .sqlite(path: path, operation: operation, code: -1, message: "\(error)")
        }
    }
}
