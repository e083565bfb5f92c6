import GRDB

/// SQLite opened so that every commit is on disk when it returns: WAL, and
/// `synchronous=FULL` on every connection. The stores of the package (the KV
/// replicas', the file gateway's metadata) open their files here.
public enum DurableSQLite {
    /// The settings: WAL and FULL set in `prepareDatabase`, not with GRDB's
    /// `journalMode = .wal`, which also sets synchronous=NORMAL (in WAL mode that
    /// skips the fsync at commit and can lose the last acknowledged writes on
    /// power loss); a log checkpointed every `autoCheckpointPages` 4 KiB pages and
    /// cut back to 4 times that when it starts over; a 5 s wait for a lock another
    /// process (an operator's sqlite3) holds briefly.
    public static func configuration(path: String, autoCheckpointPages: Int) -> Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            guard mode == "wal" else {
                throw DatabaseError(message: "could not switch \(path) to WAL mode (journal_mode is \(mode ?? "unknown"))")
            }
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(autoCheckpointPages)")
            try db.execute(sql: "PRAGMA journal_size_limit = \(autoCheckpointPages * 4096)")
        }
        return configuration
    }

    /// A pool (one writer, concurrent readers) on `path` with ``configuration(path:autoCheckpointPages:)``.
    public static func pool(path: String, configuration: Configuration) throws -> DatabasePool {
        let pool = try DatabasePool(path: path, configuration: configuration)
        // The pool sets synchronous=NORMAL on its writer after `prepareDatabase` (GRDB's
        // WAL setup): FULL again, for the only connection that commits.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        return pool
    }
}
