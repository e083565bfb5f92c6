import Metrics

/// A node's own metrics (docs/file-store.md, "Metrics"); the server's request
/// metrics come from IProto under the same prefix.
final class VolumeMetrics: Sendable {
    static let help: [String: String] = [
        "iproto_vol_capacity_bytes": "The most bytes this node's volumes may take (--capacity)",
        "iproto_vol_used_bytes": "Bytes this node's volumes take, deleted parts included until compaction",
        "iproto_vol_parts": "Parts held (complete or not)",
        "iproto_vol_read_only_volumes": "Volumes kept read-only after damage or a failed write (their reasons are logged)",
        "iproto_vol_chunks_written_total": "Chunks made durable",
        "iproto_vol_chunk_bytes_written_total": "Bytes of those chunks",
        "iproto_vol_chunks_read_total": "Chunks served",
        "iproto_vol_commits_total": "Syncs of staged chunks, seals and deletes (one per reply barrier with writes)",
        "iproto_vol_commit_records_total": "Records in those syncs: divided by the commits, the mean batch",
        "iproto_vol_commit_failures_total": "Syncs that failed: every request of the batch was answered vol_cannot_persist",
        "iproto_vol_full_refusals_total": "Chunks refused because they did not fit under --capacity",
        "iproto_vol_checksum_mismatches_total": "Chunks refused because their bytes did not match the checksum sent with them",
        "iproto_vol_corrupt_reads_total": "Reads of stored chunks that failed their checksum (answered vol_corrupt)",
        "iproto_vol_registration_failures_total": "Registrations at the gateway that failed",
        "iproto_vol_garbage_bytes": "Bytes of the volumes' records that are no longer current (deleted parts, replaced chunks): what compaction can give back",
        "iproto_vol_compactions_total": "Volumes rewritten without their garbage",
        "iproto_vol_compaction_reclaimed_bytes_total": "Bytes those compactions gave back",
        "iproto_vol_compaction_failures_total": "Compactions that failed (logged; the volume is kept as it is and not tried again until a restart)",
    ]

    let capacityBytes = Gauge(label: "iproto_vol_capacity_bytes")
    let usedBytes = Gauge(label: "iproto_vol_used_bytes")
    let parts = Gauge(label: "iproto_vol_parts")
    let readOnlyVolumes = Gauge(label: "iproto_vol_read_only_volumes")
    let chunksWritten = Counter(label: "iproto_vol_chunks_written_total")
    let chunkBytesWritten = Counter(label: "iproto_vol_chunk_bytes_written_total")
    let chunksRead = Counter(label: "iproto_vol_chunks_read_total")
    let commits = Counter(label: "iproto_vol_commits_total")
    let commitRecords = Counter(label: "iproto_vol_commit_records_total")
    let commitFailures = Counter(label: "iproto_vol_commit_failures_total")
    let fullRefusals = Counter(label: "iproto_vol_full_refusals_total")
    let checksumMismatches = Counter(label: "iproto_vol_checksum_mismatches_total")
    let corruptReads = Counter(label: "iproto_vol_corrupt_reads_total")
    let registrationFailures = Counter(label: "iproto_vol_registration_failures_total")
    let garbageBytes = Gauge(label: "iproto_vol_garbage_bytes")
    let compactions = Counter(label: "iproto_vol_compactions_total")
    let compactionReclaimedBytes = Counter(label: "iproto_vol_compaction_reclaimed_bytes_total")
    let compactionFailures = Counter(label: "iproto_vol_compaction_failures_total")
}
