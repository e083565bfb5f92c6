/// A revision of etcd's key space: every change increments it, cluster-wide.
/// The create revision of an election's leader key is the leader's epoch.
public struct Revision: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public init(_ value: Int64) { rawValue = value }
    public static func < (a: Revision, b: Revision) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "\(rawValue)" }
}

/// A lease's id, as etcd granted it.
public struct LeaseID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public var description: String { String(UInt64(bitPattern: rawValue), radix: 16) }
}

/// One key with its value and revisions, as a range, a txn or an election returns it.
public struct EtcdKeyValue: Hashable, Sendable {
    public var key: String
    public var value: [UInt8]
    public var createRevision: Revision
    public var modRevision: Revision
    /// How many times the key was written since it was created (1 for a new key).
    public var version: Int64
    /// The lease the key is attached to, if any.
    public var lease: LeaseID?

    public init(key: String, value: [UInt8], createRevision: Revision, modRevision: Revision, version: Int64, lease: LeaseID?) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }

    /// The value as UTF-8 text.
    public var text: String { String(decoding: value, as: UTF8.self) }
}

/// What a range read returned, at which revision of the key space.
public struct RangeResult: Sendable {
    public var kvs: [EtcdKeyValue]
    public var revision: Revision
}

/// One comparison of a transaction's guard.
public struct Compare: Sendable {
    public enum Target: Sendable {
        /// The key's create revision; 0 when the key does not exist.
        case createRevision(Revision)
        /// The key's last modification revision.
        case modRevision(Revision)
        /// The key's value.
        case value([UInt8])
        /// The lease the key is attached to.
        case lease(LeaseID)
    }

    public var key: String
    public var target: Target

    public init(key: String, _ target: Target) {
        self.key = key
        self.target = target
    }

    /// Holds when `key` does not exist.
    public static func absent(_ key: String) -> Compare { Compare(key: key, .createRevision(Revision(0))) }
}

/// One operation of a transaction's branch.
public enum TxnOperation: Sendable {
    case put(key: String, value: [UInt8], lease: LeaseID?)
    case get(key: String)
    case delete(key: String)
}

/// What a transaction did: which branch ran, and what that branch's reads returned.
public struct TxnResult: Sendable {
    public var succeeded: Bool
    public var revision: Revision
    /// The key-values of each `get` of the branch that ran, in order.
    public var ranges: [[EtcdKeyValue]]
}

/// A campaign's win: the leader key and its create revision (the epoch).
public struct LeaderKey: Hashable, Sendable {
    public var name: String
    public var key: String
    public var revision: Revision
    public var lease: LeaseID
}

/// Why a call to etcd failed, by where it failed.
public enum EtcdError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No endpoint answered (connection refused, reset, timed out) or etcd had no
    /// raft leader (HTTP 503): a write may or may not have been applied.
    case unavailable(String)
    /// The lease does not exist (expired or revoked).
    case leaseNotFound
    /// etcd refused the request: its gRPC code and message.
    case refused(code: Int, message: String)
    /// A reply that is not what the v3 gateway sends.
    case malformedReply(String)

    public var description: String {
        switch self {
        case .unavailable(let why): "etcd unavailable: \(why)"
        case .leaseNotFound: "etcd: lease not found"
        case .refused(let code, let message): "etcd refused the request (code \(code)): \(message)"
        case .malformedReply(let why): "etcd sent a malformed reply: \(why)"
        }
    }
}
