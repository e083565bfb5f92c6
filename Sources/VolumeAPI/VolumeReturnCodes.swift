import IProto

/// A file-store node's return codes (docs/file-store.md, "Node API"), from 0x301 up.
extension ReturnCode {
    /// The chunk does not fit under the node's --capacity; nothing was written.
    public static let volFull = ReturnCode(rawValue: 0x301)
    /// The chunk's bytes do not match the checksum sent with them: damaged on the way; nothing was written.
    public static let volChecksumMismatch = ReturnCode(rawValue: 0x302)
    /// The part or chunk is not on this node (never written, or deleted).
    public static let volNotFound = ReturnCode(rawValue: 0x303)
    /// The request contradicts what is stored: other bytes for a stored chunk, a chunk of a sealed
    /// or deleted part, a seal whose chunk count or length disagrees.
    public static let volConflict = ReturnCode(rawValue: 0x304)
    /// The node's disk refused the write or the sync; nothing of the request is acknowledged.
    public static let volCannotPersist = ReturnCode(rawValue: 0x305)
    /// The stored chunk fails its checksum (bit rot, a damaged volume): rebuild it from parity.
    public static let volCorrupt = ReturnCode(rawValue: 0x306)

    /// The name of a file-store node code as in docs/file-store.md, or nil.
    public var volName: String? {
        switch rawValue {
        case 0x301: "vol_full"
        case 0x302: "vol_checksum_mismatch"
        case 0x303: "vol_not_found"
        case 0x304: "vol_conflict"
        case 0x305: "vol_cannot_persist"
        case 0x306: "vol_corrupt"
        default: nil
        }
    }
}
