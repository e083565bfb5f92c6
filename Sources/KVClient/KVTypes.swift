import IProto

/// A value as the cluster keeps it: MessagePack str or bin, returned as it was set.
public enum KVValue: Hashable, Sendable, CustomStringConvertible {
    /// A MessagePack str (its bytes as sent; usually UTF-8).
    case string([UInt8])
    case binary([UInt8])

    public static func text(_ text: String) -> KVValue { .string(Array(text.utf8)) }

    init?(_ value: MessagePackValue) {
        switch value {
        case .stringBytes(let bytes): self = .string(bytes)
        case .string(let text): self = .string(Array(text.utf8))
        case .binary(let bytes): self = .binary(bytes)
        default: return nil
        }
    }

    var messagePack: MessagePackValue {
        switch self {
        case .string(let bytes): .stringBytes(bytes)
        case .binary(let bytes): .binary(bytes)
        }
    }

    public var bytes: [UInt8] {
        switch self {
        case .string(let bytes), .binary(let bytes): bytes
        }
    }

    /// A str quoted (invalid UTF-8 as escapes), a bin as hex.
    public var description: String { messagePack.description }
}

/// The cluster as one node described it in its heartbeat answer.
public struct ClusterStatus: Equatable, Sendable {
    public struct Node: Equatable, Sendable {
        public var id: String
        public var address: String
        /// "leader" or "follower".
        public var role: String
        public var alive: Bool
    }

    public var nodes: [Node]
    public var leader: String?
    public var replicationFactor: Int
    public var warnings: [String]

    init?(_ value: MessagePackValue) {
        guard case .map(let pairs) = value else { return nil }
        func field(_ name: String) -> MessagePackValue? {
            pairs.first { pair in
                if case .string(let key) = pair.key { return key == name }
                if case .stringBytes(let key) = pair.key { return key == Array(name.utf8) }
                return false
            }?.value
        }
        func text(_ value: MessagePackValue?) -> String? {
            switch value {
            case .string(let text)?: text
            case .stringBytes(let bytes)?: String(decoding: bytes, as: UTF8.self)
            default: nil
            }
        }
        guard case .array(let nodes)? = field("nodes") else { return nil }
        self.nodes = nodes.compactMap { node in
            guard case .map(let fields) = node else { return nil }
            func get(_ name: String) -> MessagePackValue? {
                fields.first { text($0.key) == name }?.value
            }
            guard let id = text(get("id")), let address = text(get("address")) else { return nil }
            var alive = false
            if case .bool(let value)? = get("alive") { alive = value }
            return Node(id: id, address: address, role: text(get("role")) ?? "follower", alive: alive)
        }
        leader = text(field("leader"))
        switch field("replication_factor") {
        case .uint(let value)?: replicationFactor = Int(value)
        case .int(let value)?: replicationFactor = Int(value)
        default: return nil
        }
        if case .array(let warnings)? = field("warnings") { self.warnings = warnings.compactMap { text($0) } } else { warnings = [] }
    }
}

/// What a ``KVClient`` noticed on its own, for a REPL to tell its user.
public enum KVClientEvent: Equatable, Sendable {
    case switchedNode(from: String, to: String, why: String)
    case leaderChanged(String)
    case warnings([String])
    case nodeJoined(String)
}

public struct KVClientConfiguration: Sendable {
    /// The deadline of one call to one node.
    public var callTimeout: Duration = .seconds(2)
    /// How often ``KVClient/startHeartbeats()`` asks for the cluster's state.
    public var heartbeatInterval: Duration = .seconds(1)
    /// Tries of one call across nodes (following the leader, skipping dead nodes).
    public var maxAttempts = 8
    /// The pause before a retry, times the attempt number (up to 8).
    public var retryDelay: Duration = .milliseconds(100)

    public init() {}
}

/// Why a call failed, by what the caller may conclude.
public enum KVClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The cluster refused the request; nothing was done (bad key, no quorum reachable, …).
    case refused(IProtoError)
    /// A write that may or may not have taken effect: it reached a node, and no answer (or
    /// only a partial acknowledgement) came back. Read the key to find out.
    case outcomeUnknown(String)
    /// No node could be reached.
    case unavailable(String)
    case protocolViolation(String)
    case cancelled

    public var description: String {
        switch self {
        case .refused(let error):
            let name = error.code.kvName ?? error.code.name ?? "code \(error.code.rawValue)"
            return "\(name): \(error.message)"
        case .outcomeUnknown(let why): return "outcome unknown: \(why)"
        case .unavailable(let why): return "unavailable: \(why)"
        case .protocolViolation(let why): return "protocol violation: \(why)"
        case .cancelled: return "cancelled"
        }
    }
}
