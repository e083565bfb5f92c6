public import KVReplication

/// Why the replica store refused or failed an operation. Environment failures (disk full, I/O
/// error, a locked or unreadable file) are thrown, never crashed on; `description` names the file
/// and carries SQLite's own message.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A write from an older leader epoch than the highest this replica has persisted
    /// (answered kv_stale_epoch, 0x205). Nothing was applied.
    case staleEpoch(have: Epoch, got: Epoch)
    /// A version or epoch this store cannot hold: versions are stored as SQLite's signed 64-bit
    /// INTEGER, so an epoch must be below 2^31 (`ReplicaStore.maximumEpoch`). Nothing was applied.
    case outOfRange(String)
    /// A caller's argument the store refuses (a tombstone with bytes, a reserved meta name, …).
    case invalidArgument(String)
    /// The directory could not be created or used.
    case directory(path: String, message: String)
    /// SQLite failed: `operation` is what the store was doing, `code` SQLite's extended result
    /// code and `message` its message. Nothing of a failed write was applied.
    case sqlite(path: String, operation: String, code: Int32, message: String)
    /// The file holds a row this code cannot have written (a kind out of range, a negative version).
    case corrupt(path: String, message: String)

    /// Whether the failure is SQLITE_FULL: the disk (or the file's size limit) is full.
    public var isDiskFull: Bool {
        if case .sqlite(_, _, let code, _) = self { return code & 0xff == 13 }
        return false
    }

    public var description: String {
        switch self {
        case .staleEpoch(let have, let got): return "stale epoch \(got): this replica has seen epoch \(have)"
        case .outOfRange(let message), .invalidArgument(let message): return message
        case .directory(let path, let message): return "data directory \(path): \(message)"
        case .sqlite(let path, let operation, let code, let message):
            return "\(operation) in \(path): \(message) (SQLite error \(code))"
        case .corrupt(let path, let message): return "\(path) is damaged: \(message)"
        }
    }
}
