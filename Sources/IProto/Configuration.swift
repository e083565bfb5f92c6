#if canImport(Glibc)
import Glibc
#endif

/// Everything a server needs to know before it starts, with the documented defaults.
public struct Configuration: Sendable, Equatable {
    /// Address to bind: a numeric IPv4/IPv6 address or a host name.
    public var host: String = "127.0.0.1"
    /// TCP port; 0 picks a free one (read it back from ``Server/port``).
    public var port: UInt16 = 3301
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
    /// Time allowed to complete a request once its first byte has arrived. Default 10 s; zero disables.
    public var readTimeout: Duration = .seconds(10)
    /// Time a connection may go without any bytes moving either way. Default 30 s; zero disables.
    public var idleTimeout: Duration = .seconds(30)
    /// On shutdown, time allowed to flush replies before connections are closed anyway. Default 10 s.
    public var shutdownTimeout: Duration = .seconds(10)

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
        try require(readTimeout >= .zero, "read timeout must not be negative")
        try require(idleTimeout >= .zero, "idle timeout must not be negative")
        try require(shutdownTimeout >= .zero, "shutdown timeout must not be negative")
    }
}

/// A configuration value out of its allowed range.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
