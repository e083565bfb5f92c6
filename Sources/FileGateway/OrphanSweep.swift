import Logging
import VolumeAPI

/// Parts a node holds that the metadata has no record of on that node: the
/// orphans. The gateway's own work leaves none for long (a part's row is written
/// before its first chunk is sent, and forgotten only after its node deleted it),
/// so orphans come from outside it: metadata restored from an older backup, a node
/// that served another cluster, or a chunk that reached its node after the part
/// had been reclaimed there. Unchecked, they would hold a node's capacity forever.
/// The sweep lists every live node's parts (VOL_LIST_PARTS), asks the metadata
/// which are recorded on it, and deletes the rest; the deleted records become
/// garbage on the node, which compaction gives back.
///
/// Safe against the gateway's own traffic by the same order: a part on a node was
/// recorded before its first chunk, so the listing can only turn up a part with a
/// row, or one whose row was already gone (reclaimed, its deletion repeated).
extension FileStore {
    public struct OrphanSweep: Sendable, Encodable, Equatable {
        public var nodes = 0
        public var parts_listed = 0
        public var orphans_deleted = 0
        /// Nodes whose listing or deletions failed (they are swept again next time).
        public var failed_nodes: [String] = []
    }

    /// One sweep over every live node; parts are listed `page` at a time.
    public func sweepOrphans(page: Int = 1000) async -> OrphanSweep {
        var sweep = OrphanSweep()
        for status in nodes.statuses() where status.alive {
            guard let client = nodes.client(status.id) else { continue }
            sweep.nodes += 1
            var after: UInt = 0
            do {
                while true {
                    let listed = try await client.listParts(after: after, limit: page).parts
                    guard let last = listed.last else { break }
                    sweep.parts_listed += listed.count
                    let recorded = try await metadata.recordedParts(listed.map { UInt64($0) }, on: status.id)
                    for part in listed where !recorded.contains(UInt64(part)) {
                        try await client.deletePart(part: part)
                        sweep.orphans_deleted += 1
                        metrics.orphansReclaimed.increment()
                        logger.notice("an orphaned part deleted", metadata: ["node": "\(status.id)", "part": "\(part)"])
                    }
                    if listed.count < page { break }
                    after = last
                }
            } catch {
                sweep.failed_nodes.append(status.id)
                logger.warning("the orphan sweep of a node failed", metadata: ["node": "\(status.id)", "error": "\(error)"])
            }
        }
        return sweep
    }
}
