/// A leader's term: the create revision of its etcd election key. Replicas persist the highest
/// epoch they have seen and refuse writes from a lower one, which fences off deposed leaders.
public struct Epoch: RawRepresentable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// No epoch seen yet: every real etcd revision is greater.
    public static let zero = Epoch(0)

    public static func < (lhs: Epoch, rhs: Epoch) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue) }
}

/// The version of one write: `(epoch << 32) | counter`, where the leader of an epoch numbers its
/// writes 1, 2, … So versions order writes across leaders (a later epoch always wins) and within
/// one. A replica keeps, per key, the record with the highest version.
public struct Version: RawRepresentable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The version of write `counter` in `epoch`, or nil when the epoch does not fit in 32 bits.
    public init?(epoch: Epoch, counter: UInt32) {
        guard epoch.rawValue <= UInt64(UInt32.max) else { return nil }
        rawValue = epoch.rawValue << 32 | UInt64(counter)
    }

    /// Older than every write: what a replica reports for a key it has never seen.
    public static let zero = Version(rawValue: 0)

    /// The epoch of the leader that assigned this version (the high 32 bits).
    public var epoch: Epoch { Epoch(rawValue >> 32) }
    /// The write's number within its epoch (the low 32 bits).
    public var counter: UInt32 { UInt32(truncatingIfNeeded: rawValue) }

    public static func < (lhs: Version, rhs: Version) -> Bool { lhs.rawValue < rhs.rawValue }
    /// `epoch.counter`, e.g. `812.3`.
    public var description: String { "\(epoch).\(counter)" }
}

/// A node's permanent identity, never reused (a restarted node keeps its ID; a new node gets a new
/// one). Placement hashes it, so it must not be derived from an address that can move.
public struct NodeID: RawRepresentable, Sendable, Hashable, Comparable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { rawValue }
}
