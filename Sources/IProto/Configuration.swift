#if canImport(Glibc)
import Glibc
#endif

/// Everything a server needs to know before it starts, with the documented defaults.
public struct Configuration: Sendable, Equatable {
    /// Address to bind: a numeric IPv4/IPv6 address or a host name.
    public var host: String = "127.0.0.1"
    /// TCP port; 0 picks a free one (read it back from ``Server/port``).
    public var port: UInt16 = 3301
    /// An already-listening socket to serve instead of binding `host:port`
    /// (systemd socket activation passes one as file descriptor 3).
    public var listenFileDescriptor: Int32? = nil
    /// Sets SO_REUSEPORT, so that a new process can bind the same port beside
    /// this one before this one stops (zero-downtime restart). Default off.
    public var reusePort = false
    /// Worker threads, each running its own event loop. Default: min(4, online cores).
    public var workers: Int = Configuration.defaultWorkers
    /// Largest accepted `body_length`; a larger one is answered with
    /// ``ReturnCode/bodyTooLarge`` and the connection is closed. Default 64 KiB.
    public var maxBodyBytes: Int = 64 * 1024
    /// Unsent output per connection past which the server stops reading from
    /// it until the client catches up. Default 1 MiB.
    public var maxOutputBytes: Int = 1024 * 1024
    /// Open connections across all workers; past it new ones are closed at once. Default 1024.
    public var maxConnections: Int = 1024
    /// Open connections from one client address; past it new ones are closed at once.
    /// Default 100, the assignment's agreement; 0 disables.
    public var maxConnectionsPerIP: Int = 100
    /// Sustained requests per second per connection; requests over it are
    /// answered with ``ReturnCode/rateLimited`` and not run. Default 100, the
    /// assignment's agreement; 0 disables.
    public var rateLimit: Double = 100
    /// Requests a connection may send at once beyond the sustained rate (the
    /// token bucket's size). Default 1000, so a conforming client may pipeline.
    public var rateBurst: Int = 1000
    /// Time allowed to complete a request once its first byte has arrived. Default 10 s; zero disables.
    public var readTimeout: Duration = .seconds(10)
    /// Time a connection may go without any bytes moving either way. Default 30 s; zero disables.
    public var idleTimeout: Duration = .seconds(30)
    /// On shutdown, time allowed to flush replies before connections are closed anyway. Default 10 s.
    public var shutdownTimeout: Duration = .seconds(10)
    /// Prefix of every metric name the server records through swift-metrics. Default "iproto".
    public var metricsPrefix = "iproto"
    /// Memory for stashed input and unsent output across all connections and
    /// workers; past it the server stops reading from the connections that hold
    /// the most until their clients read (or close). Default 256 MiB; 0 disables.
    public var memoryBudgetBytes: Int = 256 * 1024 * 1024

    public init(host: String = "127.0.0.1", port: UInt16 = 3301) {
        self.host = host
        self.port = port
    }

    /// min(4, online cores): the assignment's resource agreement allows four cores.
    public static var defaultWorkers: Int {
        max(1, min(4, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
    }

    /// Checks every value; the message names the offending setting.
    public func validate() throws(ConfigurationError) {
        func require(_ condition: Bool, _ message: String) throws(ConfigurationError) {
            if !condition { throw ConfigurationError(message: message) }
        }
        try require(!host.isEmpty, "host must not be empty")
        try require((1...1024).contains(workers), "workers must be between 1 and 1024, got \(workers)")
        try require((0...Int(UInt32.max)).contains(maxBodyBytes), "max body must be between 0 and \(UInt32.max) bytes, got \(maxBodyBytes)")
        try require(maxOutputBytes >= 1, "max output must be at least 1 byte, got \(maxOutputBytes)")
        try require((1...Int(UInt32.max)).contains(maxConnections), "max connections must be at least 1, got \(maxConnections)")
        try require((0...Int(UInt32.max)).contains(maxConnectionsPerIP), "max connections per IP must not be negative, got \(maxConnectionsPerIP)")
        try require(rateLimit.isFinite && rateLimit >= 0, "rate limit must be a number of requests per second ≥ 0, got \(rateLimit)")
        try require(rateBurst >= 1, "rate burst must be at least 1, got \(rateBurst)")
        try require(listenFileDescriptor.map { $0 >= 0 } ?? true, "listen file descriptor must not be negative")
        try require(!metricsPrefix.isEmpty, "metrics prefix must not be empty")
        try require(readTimeout >= .zero, "read timeout must not be negative")
        try require(idleTimeout >= .zero, "idle timeout must not be negative")
        try require(shutdownTimeout >= .zero, "shutdown timeout must not be negative")
        try require(memoryBudgetBytes >= 0, "memory budget must not be negative, got \(memoryBudgetBytes)")
    }
}

/// A configuration value out of its allowed range.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
