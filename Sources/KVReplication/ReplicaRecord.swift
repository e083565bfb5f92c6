/// What a value is, with the numbers KV_REPLICA_WRITE carries in its `kinds` array.
public enum ValueKind: UInt8, Sendable, Hashable, CaseIterable {
    /// Set from a MessagePack str; KV_GET answers a str.
    case str = 0
    /// Set from a MessagePack bin; KV_GET answers a bin.
    case bin = 1
    /// Deleted. Kept as a record with its version so that an older write arriving late (or from a
    /// replica that missed the delete) cannot bring the key back.
    case tombstone = 2
}

/// One key's state on a replica: the write with the highest version seen for it.
public struct ReplicaRecord: Sendable, Hashable {
    /// The canonical key text (`KVKey.text`).
    public var key: String
    public var version: Version
    public var kind: ValueKind
    /// The value's bytes; empty for a tombstone.
    public var value: [UInt8]

    public init(key: String, version: Version, kind: ValueKind, value: [UInt8]) {
        self.key = key
        self.version = version
        self.kind = kind
        self.value = value
    }

    /// The deletion of `key` at `version`.
    public static func tombstone(key: String, version: Version) -> ReplicaRecord {
        ReplicaRecord(key: key, version: version, kind: .tombstone, value: [])
    }

    /// Whether this record replaces `stored` on a replica: only a strictly higher version does,
    /// so applying a write twice, or an older one late, changes nothing.
    public func supersedes(_ stored: ReplicaRecord?) -> Bool {
        guard let stored else { return true }
        return version > stored.version
    }
}

extension ReplicaRecord {
    /// At least the bytes this record adds to a KV_REPLICA_WRITE or KV_REPLICA_FETCH
    /// message: its key and value, and a generous allowance for their MessagePack
    /// headers and the version and kind.
    public var messageBytes: Int { key.utf8.count + value.count + 32 }

    /// The records cut, in order, into runs of at most `maxBytes` message bytes each,
    /// for one replica call per run (a replica refuses a body over its limit). A record
    /// larger than `maxBytes` on its own makes a run of one.
    public static func calls(_ records: [ReplicaRecord], maxBytes: Int) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        var start = 0
        var bytes = 0
        for (index, record) in records.enumerated() {
            if index > start, bytes + record.messageBytes > maxBytes {
                runs.append(start..<index)
                (start, bytes) = (index, 0)
            }
            bytes += record.messageBytes
        }
        if start < records.count { runs.append(start..<records.count) }
        return runs
    }
}
