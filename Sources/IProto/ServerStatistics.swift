/// Why the server closed a connection.
public enum CloseReason: String, CaseIterable, Sendable {
    /// The client closed or reset the connection.
    case peer
    /// No bytes moved either way for the idle timeout.
    case idleTimeout = "idle_timeout"
    /// A request started but did not complete within the read timeout.
    case readTimeout = "read_timeout"
    /// A request announced a body over the limit.
    case tooLarge = "too_large"
    /// Accepted past max connections and closed at once.
    case overLimit = "over_limit"
    /// Accepted past max connections per IP and closed at once.
    case overIPLimit = "over_ip_limit"
    /// The server shut down.
    case shutdown
    /// A socket error other than a reset.
    case ioError = "io_error"
}

/// Counters since the server started, summed over workers.
public struct ServerStatistics: Equatable, Sendable {
    public var connectionsAccepted: UInt64 = 0
    public var connectionsActive: UInt64 = 0
    public var connectionsClosed: [CloseReason: UInt64] = [:]
    public var requests: UInt64 = 0
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    /// Requests refused for a body over the limit.
    public var bodyTooLarge: UInt64 = 0
    /// Times reading from a connection paused because its output reached the cap.
    public var outputPaused: UInt64 = 0
    /// Times a connection used up its per-turn request budget and let the others go first.
    public var turnsYielded: UInt64 = 0
    /// accept() failures such as running out of file descriptors.
    public var acceptErrors: UInt64 = 0
    /// Bytes held now for stashed input and unsent output, across connections (not a counter).
    public var bufferedBytes: UInt64 = 0
    /// Times reading from a connection paused because the server's buffers passed the memory budget.
    public var memoryBudgetPaused: UInt64 = 0

    public init() {}

    public func closed(_ reason: CloseReason) -> UInt64 { connectionsClosed[reason, default: 0] }
}
