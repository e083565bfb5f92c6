import StableHashing

/// Which nodes hold a key: rendezvous (highest random weight) hashing.
///
/// Every node gets a score for the key, `mix(hash(key) ^ hash(node))`, and the key's replicas are
/// the `count` highest-scoring nodes, best first (the first is the primary). A node joining takes
/// only the keys it now outscores everyone on, about 1/N of them, and changes at most one member
/// of any key's replica set; a node leaving moves only its own keys. `hash mod N` would instead
/// move most keys (see `PlacementTests`).
///
/// The hash is FNV-1a 64 over the UTF-8 bytes followed by the splitmix64 finalizer (``StableHash``),
/// so that every node, in every process and run, computes the same placement.
///
/// Pure: the caller passes the node IDs (never reused, so a restarted node keeps its keys).
public enum Placement {
    /// The `min(count, distinct nodes)` owners of `key`, highest score first; equal scores (a
    /// 64-bit collision) are ordered by node ID so that the answer is the same everywhere.
    /// Duplicate node IDs count once.
    public static func owners(of key: String, among nodes: [NodeID], count: Int) -> [NodeID] {
        guard count > 0 else { return [] }
        let keyHash = hash(key)
        var seen = Set<NodeID>()
        var scored: [(node: NodeID, score: UInt64)] = []
        scored.reserveCapacity(nodes.count)
        for node in nodes where seen.insert(node).inserted {
            scored.append((node, mix(keyHash ^ hash(node.rawValue))))
        }
        scored.sort { $0.score != $1.score ? $0.score > $1.score : $0.node < $1.node }
        return scored.prefix(count).map(\.node)
    }

    /// The primary owner of `key`, or nil when there are no nodes.
    public static func primary(of key: String, among nodes: [NodeID]) -> NodeID? {
        owners(of: key, among: nodes, count: 1).first
    }

    /// `node`'s score for `key`; the highest wins.
    public static func score(of key: String, on node: NodeID) -> UInt64 {
        mix(hash(key) ^ hash(node.rawValue))
    }

    /// FNV-1a 64 of the UTF-8 bytes of `text` (``StableHash/fnv1a(_:)``).
    public static func hash(_ text: String) -> UInt64 { StableHash.fnv1a(text) }

    /// The splitmix64 finalizer (``StableHash/mix(_:)``).
    public static func mix(_ value: UInt64) -> UInt64 { StableHash.mix(value) }
}
