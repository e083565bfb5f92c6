/// How a client connects and how long it waits, with the documented defaults.
public struct ClientConfiguration: Sendable, Equatable {
    /// Connections in the pool; calls are spread over them. Default 1.
    public var connections = 1
    /// Time a call waits for its reply unless it says otherwise. Default 5 s.
    public var callTimeout: Duration = .seconds(5)
    /// Time a connection attempt may take. Default 2 s.
    public var connectTimeout: Duration = .seconds(2)
    /// First wait before reconnecting after a failed attempt; it doubles per failure. Default 50 ms.
    public var reconnectBackoff: Duration = .milliseconds(50)
    /// Longest wait between reconnection attempts. Default 5 s.
    public var maxReconnectBackoff: Duration = .seconds(5)
    /// Largest response body accepted; a larger one closes the connection. Default 16 MiB.
    public var maxResponseBody = 16 << 20

    public init() {}
}
