import IProto

/// The key-value cluster's return codes (docs/cluster.md, "Return codes"), from 0x201 up.
extension ReturnCode {
    /// This node is a follower: the message ends with the leader's address ("…; the leader is 127.0.0.1:4002").
    public static let kvNotLeader = ReturnCode(rawValue: 0x201)
    /// No leader can serve: none is elected, or this node's leader lease lapsed. Nothing was done.
    public static let kvNoLeader = ReturnCode(rawValue: 0x202)
    /// Too few of the key's replicas are reachable; refused before anything was written.
    public static let kvReplicasUnavailable = ReturnCode(rawValue: 0x203)
    /// The write reached some replicas but too few acknowledged it: it may or may not take effect.
    public static let kvOutcomeUnknown = ReturnCode(rawValue: 0x204)
    /// Node to node: a write from a leader older than the newest this replica has seen.
    public static let kvStaleEpoch = ReturnCode(rawValue: 0x205)
    /// Too few of the key's replicas answered a read.
    public static let kvReadUnavailable = ReturnCode(rawValue: 0x206)
    /// Node to node: this replica is still catching up after its start and does not serve reads yet.
    public static let kvReplicaNotReady = ReturnCode(rawValue: 0x207)
    /// The node's store could not make a change durable (disk full, I/O error).
    public static let kvCannotPersist = ReturnCode(rawValue: 0x208)

    /// Node to node: an epoch newer than etcd's current leader, so made up (or from a broken peer); refused.
    public static let kvUnknownEpoch = ReturnCode(rawValue: 0x209)

    /// The name of a key-value code as in docs/cluster.md, or nil.
    public var kvName: String? {
        switch rawValue {
        case 0x201: "kv_not_leader"
        case 0x202: "kv_no_leader"
        case 0x203: "kv_replicas_unavailable"
        case 0x204: "kv_outcome_unknown"
        case 0x205: "kv_stale_epoch"
        case 0x206: "kv_read_unavailable"
        case 0x207: "kv_replica_not_ready"
        case 0x208: "kv_cannot_persist"
        case 0x209: "kv_unknown_epoch"
        default: nil
        }
    }
}
