import Metrics
import Synchronization

/// The node's own metrics (docs/cluster.md, "Metrics"); the server's request
/// metrics come from IProto under the same prefix.
final class KVMetrics: Sendable {
    /// Every metric name with its help text, for the Prometheus endpoint.
    static let help: [String: String] = [
        "iproto_kv_leader": "1 while this node holds the leader lease, else 0",
        "iproto_kv_epoch": "The newest leader epoch (etcd election revision) this node has seen",
        "iproto_kv_elections_total": "Elections this node won",
        "iproto_kv_leader_changes_total": "Times this node became or stopped being the leader",
        "iproto_kv_replication_errors_total": "Replica calls of the leader that failed or timed out",
        "iproto_kv_replicated_batches_total": "Write batches the leader sent to replicas (one per reply barrier with writes)",
        "iproto_kv_replicated_records_total": "Records in those batches: divided by the batches, the mean batch size",
        "iproto_kv_replica_calls_split_total": "Write batches to one replica that took more than one call (--peer-call-bytes)",
        "iproto_kv_replication_duration_seconds": "From a batch leaving the leader's worker to its quorum's answers (or their timeout)",
        "iproto_kv_writes_refused_total": "Writes refused before replication: too few replicas reachable",
        "iproto_kv_outcome_unknown_total": "Write batches that reached too few replicas to be acknowledged",
        "iproto_kv_quorum_reads_total": "Reads the leader served from replicas (not from its term cache)",
        "iproto_kv_leader_cache_evictions_total": "Records the leader's term cache forgot to stay within --leader-cache (read from replicas again)",
        "iproto_kv_read_repairs_total": "Records the leader wrote back to replicas while reading them",
        "iproto_kv_repaired_total": "Records this node copied from peers in background repair",
        "iproto_kv_repair_backlog": "Records the current repair page still has to copy",
        "iproto_kv_replication_shortfall": "Replication factor minus live nodes, when positive",
        "iproto_kv_live_nodes": "Nodes that answered a heartbeat within the liveness timeout, this one included",
        "iproto_kv_keys": "Live (non-deleted) keys in this node's store",
        "iproto_kv_epochs_refused_total": "Epochs refused because etcd's current leader is older (made up, or a broken peer)",
        "iproto_kv_placement_changes_total": "Placement records this node wrote as leader (joins, nodes gone past the grace period, settlements)",
        "iproto_kv_store_errors_total": "Store operations that failed (disk full, I/O error)",
    ]

    let role = Gauge(label: "iproto_kv_leader")
    let epoch = Gauge(label: "iproto_kv_epoch")
    let elections = Counter(label: "iproto_kv_elections_total")
    let leaderChanges = Counter(label: "iproto_kv_leader_changes_total")
    let replicationErrors = Counter(label: "iproto_kv_replication_errors_total")
    let replicatedBatches = Counter(label: "iproto_kv_replicated_batches_total")
    let replicatedRecords = Counter(label: "iproto_kv_replicated_records_total")
    let replicaCallsSplit = Counter(label: "iproto_kv_replica_calls_split_total")
    /// Seconds, in a value histogram like IProto's request durations.
    let replicationDuration = Recorder(label: "iproto_kv_replication_duration_seconds", aggregate: true)
    let writesRefused = Counter(label: "iproto_kv_writes_refused_total")
    let outcomeUnknown = Counter(label: "iproto_kv_outcome_unknown_total")
    let quorumReads = Counter(label: "iproto_kv_quorum_reads_total")
    let leaderCacheEvictions = Counter(label: "iproto_kv_leader_cache_evictions_total")
    let readRepairs = Counter(label: "iproto_kv_read_repairs_total")
    let repaired = Counter(label: "iproto_kv_repaired_total")
    let repairBacklog = Gauge(label: "iproto_kv_repair_backlog")
    let shortfall = Gauge(label: "iproto_kv_replication_shortfall")
    let liveNodes = Gauge(label: "iproto_kv_live_nodes")
    let keys = Gauge(label: "iproto_kv_keys")
    let storeErrors = Counter(label: "iproto_kv_store_errors_total")
    let epochsRefused = Counter(label: "iproto_kv_epochs_refused_total")
    let placementChanges = Counter(label: "iproto_kv_placement_changes_total")
    /// The shortfall last logged, so that a change is logged once.
    let lastShortfall = Atomic<Int>(0)
}
