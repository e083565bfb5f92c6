import Metrics

/// The gateway's metrics (docs/file-store.md, "Metrics").
final class GatewayMetrics: Sendable {
    static let help: [String: String] = [
        "iproto_files_uploads_total": "PUTs committed (the file became visible)",
        "iproto_files_upload_failures_total": "PUTs that failed and left nothing visible (bad input, a node lost, no room)",
        "iproto_files_upload_bytes_total": "Bytes of committed uploads",
        "iproto_files_too_large_total": "PUTs refused with 413 past --max-file-size (by Content-Length at once, or a chunked body as it passed the limit)",
        "iproto_files_upload_seconds": "From a PUT's first byte to its commit",
        "iproto_files_downloads_total": "GETs answered (whole or in part)",
        "iproto_files_download_bytes_total": "Bytes sent by GETs",
        "iproto_files_download_seconds": "From a GET's first block fetched to its last byte written",
        "iproto_files_degraded_reads_total": "Blocks rebuilt from parity because a data chunk was missing, damaged or its node down",
        "iproto_files_checksum_failures_total": "Chunks that came back damaged (a node's vol_corrupt, or bytes that do not match their checksum)",
        "iproto_files_unreadable_total": "GETs cut off because too few parts of a block could be read",
        "iproto_files_parts_reclaimed_total": "Parts of deleted, replaced or abandoned files deleted on their nodes",
        "iproto_files_garbage_parts": "Parts waiting to be deleted on their nodes",
        "iproto_files_orphans_reclaimed_total": "Parts found on a node with no record of them there in the metadata, deleted by the orphan sweep",
        "iproto_files_files": "Files stored",
        "iproto_files_nodes": "Storage nodes registered",
        "iproto_files_live_nodes": "Storage nodes whose last probe was answered (within the liveness timeout)",
        "iproto_files_node_live_bytes": "Bytes of committed parts on each node (label node)",
        "iproto_files_node_capacity_bytes": "Each node's capacity (label node)",
        "iproto_files_idle_closes_total": "Connections closed by --idle-timeout: their client sent nothing that long while the gateway waited for it",
        "iproto_files_transfer_waits_total": "Blocks that waited for --transfer-memory (the limit was hit)",
        "iproto_files_transfer_memory_bytes": "Bytes of blocks transfers hold now (at most --transfer-memory)",
        "iproto_files_fill_spread": "Max fill / min fill over live nodes (1 = perfectly even)",
    ]

    let uploads = Counter(label: "iproto_files_uploads_total")
    let uploadFailures = Counter(label: "iproto_files_upload_failures_total")
    let uploadBytes = Counter(label: "iproto_files_upload_bytes_total")
    let tooLarge = Counter(label: "iproto_files_too_large_total")
    let uploadSeconds = Recorder(label: "iproto_files_upload_seconds", aggregate: true)
    let downloads = Counter(label: "iproto_files_downloads_total")
    let downloadBytes = Counter(label: "iproto_files_download_bytes_total")
    let downloadSeconds = Recorder(label: "iproto_files_download_seconds", aggregate: true)
    let degradedReads = Counter(label: "iproto_files_degraded_reads_total")
    let checksumFailures = Counter(label: "iproto_files_checksum_failures_total")
    let unreadable = Counter(label: "iproto_files_unreadable_total")
    let partsReclaimed = Counter(label: "iproto_files_parts_reclaimed_total")
    let garbageParts = Gauge(label: "iproto_files_garbage_parts")
    let orphansReclaimed = Counter(label: "iproto_files_orphans_reclaimed_total")
    let files = Gauge(label: "iproto_files_files")
    let nodes = Gauge(label: "iproto_files_nodes")
    let liveNodes = Gauge(label: "iproto_files_live_nodes")
    let fillSpread = Gauge(label: "iproto_files_fill_spread")
    let transferWaits = Counter(label: "iproto_files_transfer_waits_total")
    let idleCloses = Counter(label: "iproto_files_idle_closes_total")
    let transferMemory = Gauge(label: "iproto_files_transfer_memory_bytes")

    func nodeLiveBytes(_ node: String) -> Gauge { Gauge(label: "iproto_files_node_live_bytes", dimensions: [("node", node)]) }
    func nodeCapacity(_ node: String) -> Gauge { Gauge(label: "iproto_files_node_capacity_bytes", dimensions: [("node", node)]) }
}
