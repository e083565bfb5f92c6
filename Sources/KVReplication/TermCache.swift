/// The records a leader knows to be current in its term (it wrote them, or read
/// them from a quorum), bounded by `budget` bytes of keys and values. Over the
/// budget it forgets arbitrary entries, which are then read from the replicas
/// again: a cache miss costs a quorum read, never a wrong answer.
public struct TermCache: Sendable {
    public let budget: Int
    /// Bytes of the keys and values held; never above `budget` after a call returns.
    public private(set) var bytes = 0
    private var records: [String: ReplicaRecord] = [:]

    public init(budget: Int) {
        self.budget = budget
    }

    public var count: Int { records.count }

    public subscript(key: String) -> ReplicaRecord? { records[key] }

    /// Remembers `record` unless a newer version of its key is known; how many
    /// entries it forgot to stay within the budget (`record` itself among them
    /// when it is larger than the whole budget).
    public mutating func remember(_ record: ReplicaRecord) -> Int {
        if let known = records[record.key], known.version >= record.version { return 0 }
        forget(record.key)
        records[record.key] = record
        bytes += Self.size(record)
        var evicted = 0
        while bytes > budget, let victim = records.first {
            forget(victim.key)
            evicted += 1
        }
        return evicted
    }

    /// Forgets what is known of `key`.
    public mutating func forget(_ key: String) {
        if let known = records.removeValue(forKey: key) { bytes -= Self.size(known) }
    }

    private static func size(_ record: ReplicaRecord) -> Int { record.key.utf8.count + record.value.count }
}
