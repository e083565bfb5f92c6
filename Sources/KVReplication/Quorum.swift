/// How many replicas a write and a read need, from the replication factor alone.
///
/// `write = rf/2 + 1` (a majority) and `read = rf - write + 1`, so every read set overlaps every
/// write set in at least one replica: rf 1 → 1/1, 2 → 2/1, 3 → 2/2, 4 → 3/2, 5 → 3/3.
public struct Quorum: Sendable, Hashable {
    /// How many replicas hold each key (`--replication-factor`).
    public let replicationFactor: Int

    /// `replicationFactor` must be at least 1; configuration refuses anything smaller before here.
    public init(replicationFactor: Int) {
        precondition(replicationFactor >= 1, "replication factor \(replicationFactor) < 1 passed configuration")
        self.replicationFactor = replicationFactor
    }

    /// Acknowledgements a write needs before it is reported ok.
    public var write: Int { replicationFactor / 2 + 1 }
    /// Answers a read needs.
    public var read: Int { replicationFactor - write + 1 }

    /// Whether a write may start with `reachable` replicas up; refused otherwise, before anything
    /// is written.
    public func canWrite(reachable: Int) -> Bool { reachable >= write }
    /// Whether a read may start with `reachable` replicas up.
    public func canRead(reachable: Int) -> Bool { reachable >= read }

    /// The kv_replicas_unavailable (0x203) message for a write refused up front:
    /// "needs 2 of 3 replicas, 1 reachable".
    public func writeRefusal(reachable: Int) -> String {
        "needs \(write) of \(replicationFactor) replicas, \(reachable) reachable"
    }

    /// The kv_replicas_unavailable (0x203) message for a read refused up front.
    public func readRefusal(reachable: Int) -> String {
        "needs \(read) of \(replicationFactor) replicas, \(reachable) reachable"
    }

    /// The kv_outcome_unknown (0x204) message for a write sent but acknowledged by too few:
    /// "needs 2 of 3 acknowledgements, 1 received: may or may not have taken effect".
    public func outcomeUnknown(acknowledged: Int) -> String {
        "needs \(write) of \(replicationFactor) acknowledgements, \(acknowledged) received: may or may not have taken effect"
    }
}
