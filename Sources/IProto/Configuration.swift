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
    /// Open connections from one client address (IPv6: one ``ipv6PrefixLength``
    /// prefix); past it new ones are closed at once. Default 100, the
    /// assignment's agreement; 0 disables.
    public var maxConnectionsPerIP: Int = 100
    /// Sustained requests per second per connection; requests over it are
    /// answered with ``ReturnCode/rateLimited`` and not run. Default 100, the
    /// assignment's agreement; 0 disables.
    public var rateLimit: Double = 100
    /// Requests a connection may send at once beyond the sustained rate (the
    /// token bucket's size). Default 1000, so a conforming client may pipeline.
    public var rateBurst: Int = 1000
    /// Sustained requests per second per client address, one token bucket
    /// shared by all of that address's connections on every worker (IPv6: per
    /// ``ipv6PrefixLength`` prefix), beside each connection's own. Requests
    /// over it are answered with ``ReturnCode/rateLimited`` and not run.
    /// Default 100, the assignment's agreement of 100 requests/s per client; 0 disables.
    public var rateLimitPerIP: Double = 100
    /// Requests one client address may send at once beyond its sustained rate.
    /// Default 1000, as ``rateBurst``: one conforming connection never meets it first.
    public var rateBurstPerIP: Int = 1000
    /// Leading bits of an IPv6 client address that identify the client, for
    /// ``maxConnectionsPerIP`` and ``rateLimitPerIP``: a host usually holds a
    /// whole /64, so keying by all 128 bits would give it 2^64 "addresses".
    /// IPv4 (and IPv4-mapped IPv6) addresses always count whole. Default 64; 1...128.
    public var ipv6PrefixLength: Int = 64
    /// Clients that may call the administrative functions (``adminFunctions``);
    /// any other client gets ``ReturnCode/permissionDenied``. Decided once per
    /// connection, when it is accepted. Default loopback only, `127.0.0.0/8`
    /// and `::1/128`, as Redis's protected mode; empty admits nobody, `::/0` everybody.
    public var adminFrom: [CIDR] = Configuration.loopback
    /// Which functions are administrative. Default: those whose `func_id`
    /// has the high 16 bits `0x0001` (the storage's `ADM_*` switches).
    public var adminFunctions = FunctionMask(value: 0x0001_0000, mask: 0xFFFF_0000)
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

    /// The loopback blocks, `127.0.0.0/8` and `::1/128`: the default ``adminFrom``.
    public static let loopback = [CIDR("127.0.0.0/8")!, CIDR("::1/128")!]

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
        try require(rateLimitPerIP.isFinite && rateLimitPerIP >= 0,
                    "rate limit per IP must be a number of requests per second ≥ 0, got \(rateLimitPerIP)")
        try require(rateBurstPerIP >= 1, "rate burst per IP must be at least 1, got \(rateBurstPerIP)")
        try require((1...128).contains(ipv6PrefixLength), "IPv6 prefix length must be between 1 and 128, got \(ipv6PrefixLength)")
        try require(listenFileDescriptor.map { $0 >= 0 } ?? true, "listen file descriptor must not be negative")
        try require(!metricsPrefix.isEmpty, "metrics prefix must not be empty")
        try require(readTimeout >= .zero, "read timeout must not be negative")
        try require(idleTimeout >= .zero, "idle timeout must not be negative")
        try require(shutdownTimeout >= .zero, "shutdown timeout must not be negative")
        try require(memoryBudgetBytes >= 0, "memory budget must not be negative, got \(memoryBudgetBytes)")
    }
}

/// A set of `func_id`s: those whose bits under `mask` equal `value`.
public struct FunctionMask: Sendable, Hashable {
    /// What the masked bits of a member's `func_id` are.
    public var value: UInt32
    /// The bits of `func_id` that decide membership.
    public var mask: UInt32

    /// The `func_id`s whose bits under `mask` equal `value`: `(0x0001_0000, 0xFFFF_0000)` is `0x0001xxxx`.
    public init(value: UInt32, mask: UInt32) {
        self.value = value
        self.mask = mask
    }

    /// Whether `funcID` is in the set.
    public func contains(_ funcID: UInt32) -> Bool { funcID & mask == value }
}

/// A configuration value out of its allowed range.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
