/// Which nodes hold a key: rendezvous (highest random weight) hashing.
///
/// Every node gets a score for the key, `mix(hash(key) ^ hash(node))`, and the key's replicas are
/// the `count` highest-scoring nodes, best first (the first is the primary). A node joining takes
/// only the keys it now outscores everyone on, about 1/N of them, and changes at most one member
/// of any key's replica set; a node leaving moves only its own keys. `hash mod N` would instead
/// move most keys (see `PlacementTests`).
///
/// The hash is FNV-1a 64 over the UTF-8 bytes followed by the splitmix64 finalizer, fixed here so
/// that every node, in every process and run, computes the same placement. (Swift's `Hasher` is
/// seeded per process and must never be used for this.) Changing either function moves data:
/// the golden values in `PlacementTests` exist to catch that.
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

    /// FNV-1a 64 of the UTF-8 bytes of `text`: stable across processes, runs and platforms.
    public static func hash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// The splitmix64 finalizer: every input bit affects every output bit, which FNV alone does
    /// not give for inputs that differ only in their last bytes (`node-1`, `node-2`).
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
