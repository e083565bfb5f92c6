/// Everything a key-value node needs to start; every default is named here
/// and documented in docs/cluster.md ("Flags and defaults").
public struct KVNodeConfiguration: Sendable {
    /// Where this node's data lives: its SQLite store, its node id, the cluster it joined.
    public var dataDirectory: String
    /// The cluster's replication factor this node expects; it refuses to start in a cluster with another.
    public var replicationFactor = KVNodeConfiguration.defaultReplicationFactor
    public static let defaultReplicationFactor = 2
    /// etcd's client URLs; nil for a node that learns them by `join` (or from its data directory).
    public var etcdEndpoints: [String]?
    /// Any running node ("host:port"), asked for the cluster's etcd endpoints and settings.
    public var join: String?
    /// The cluster's name: its keys in etcd live under `/iproto-kv/NAME/`.
    public var cluster = "default"
    /// The address other nodes and clients reach this node at; defaults to the address it listens on.
    public var advertise: String?
    /// The leader's etcd lease, in seconds: a dead leader is replaced about this long after its last renewal.
    public var leaseTTL = 2
    /// The largest value a SET accepts, in bytes.
    public var maxValueBytes = 1 << 20
    public static let maxValueBytesLimit = 8 << 20
    /// The deadline of one call to etcd (a failed lease renewal is retried at once).
    public var etcdTimeout: Duration = .seconds(1)
    /// How long a starting node keeps trying to reach etcd and the node it joins.
    public var startTimeout: Duration = .seconds(10)
    /// How often nodes heartbeat each other.
    public var heartbeatInterval: Duration = .milliseconds(250)
    /// A node that has not answered a heartbeat for this long counts as down.
    public var livenessTimeout: Duration = .seconds(1)
    /// How often a node reads the member list and the leader from etcd.
    public var membershipInterval: Duration = .milliseconds(250)
    /// The leader refuses requests while its member list is older than this
    /// (so that it never places keys on a stale list; docs/cluster.md, "Joining").
    public var membershipMaxAge: Duration = .seconds(1)
    /// The deadline of a call to another node.
    public var peerTimeout: Duration = .milliseconds(500)
    /// How often a node compares its keys with its peers' and copies what it misses.
    public var repairInterval: Duration = .seconds(2)
    /// A node silent for this long leaves the placement: the nodes that now own its
    /// keys copy them from the other replicas (docs/cluster.md, "Placement").
    public var deadNodeGrace: Duration = .seconds(30)
    /// The most record bytes one call to a replica carries (KV_REPLICA_WRITE) or asks
    /// for (KV_REPLICA_FETCH): a batch of large values goes in as many calls as it
    /// needs, each well inside a replica's body limit (`maxBodyBytes`).
    public var peerCallBytes = 16 << 20
    /// The largest request body a node accepts (from clients and peers alike; a larger
    /// one is refused with body_too_large and the connection closed), and the largest
    /// reply it takes from a peer.
    public var maxBodyBytes = 64 << 20
    public static let maxBodyBytesRange = (64 << 10)...(1 << 30)
    /// The bytes of values the leader keeps in memory for keys it has written or read in its term.
    public var leaderCacheBytes = 64 << 20

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }

    /// A checked configuration, or why not (one line, naming the flag).
    public func validated() throws(KVConfigurationError) -> KVNodeConfiguration {
        guard (1...7).contains(replicationFactor) else {
            throw KVConfigurationError("--replication-factor must be between 1 and 7, got \(replicationFactor)")
        }
        guard (1...60).contains(leaseTTL) else { throw KVConfigurationError("--lease-ttl must be between 1 and 60 seconds, got \(leaseTTL)") }
        guard (1...Self.maxValueBytesLimit).contains(maxValueBytes) else {
            throw KVConfigurationError("--max-value must be between 1 and \(Self.maxValueBytesLimit) bytes, got \(maxValueBytes)")
        }
        // A call holds at least one record whole; the largest must fit a body.
        guard (Self.maxBodyBytesRange).contains(maxBodyBytes) else {
            throw KVConfigurationError("--max-body must be between \(Self.maxBodyBytesRange.lowerBound) and \(Self.maxBodyBytesRange.upperBound) bytes, got \(maxBodyBytes)")
        }
        // Two comparisons, not a range: the bounds come from two flags and may cross.
        guard peerCallBytes >= maxValueBytes + 1024, peerCallBytes <= maxBodyBytes / 2 else {
            throw KVConfigurationError(
                "--peer-call-bytes must be between --max-value + 1024 (\(maxValueBytes + 1024)) and half of --max-body (\(maxBodyBytes / 2)), got \(peerCallBytes)")
        }
        guard leaderCacheBytes >= 0 else {
            throw KVConfigurationError("--leader-cache must be 0 (no cache) or more bytes, got \(leaderCacheBytes)")
        }
        guard !cluster.isEmpty, cluster.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw KVConfigurationError("--cluster must be letters, digits, '-' or '_', got '\(cluster)'")
        }
        // The timing budget (docs/cluster.md, "Assumptions"): a leader must notice a
        // lapsed lease, and finish a replica call, well inside its lease.
        let lease = Duration.seconds(leaseTTL)
        guard peerTimeout * 2 <= lease else {
            throw KVConfigurationError("the peer timeout (\(peerTimeout)) must be at most half the lease TTL (\(lease))")
        }
        guard deadNodeGrace >= livenessTimeout * 2 else {
            throw KVConfigurationError("--dead-node-grace (\(deadNodeGrace)) must be at least twice the liveness timeout (\(livenessTimeout))")
        }
        return self
    }
}

public struct KVConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
