/// Hashes that every process, run and platform computes alike, for placement
/// decisions nodes must agree on (the KV cluster's replicas, the file store's
/// tie-breaks). Swift's `Hasher` is seeded per process and must never be used
/// for this. Changing either function moves data: the golden values in
/// `PlacementTests` exist to catch that.
public enum StableHash {
    /// FNV-1a 64 of the UTF-8 bytes of `text`.
    public static func fnv1a(_ text: String) -> UInt64 {
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

    /// The rendezvous (highest random weight) score of `node` for `key`: the highest wins.
    public static func rendezvousScore(key: String, node: String) -> UInt64 {
        mix(fnv1a(key) ^ fnv1a(node))
    }
}
