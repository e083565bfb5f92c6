import ArgumentParser
import IProto
import IProtoStorage
import Logging

#if canImport(Glibc)
import Glibc
#endif

@main
struct IProtoD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iprotod",
        abstract: "Serve the iproto storage API (1000 string slots with read-only, read-write and maintenance states).",
        discussion: """
            The first line printed on standard output is "iprotod listening on HOST:PORT", \
            with the port actually bound (useful with port 0). Logs go to standard error. \
            SIGINT or SIGTERM stops accepting, flushes replies and exits 0.
            """
    )

    private static let defaults = Configuration()

    @Option(help: "Address to listen on, HOST:PORT ([V6]:PORT for IPv6); port 0 picks a free port.")
    var listen = "\(defaults.host):\(defaults.port)"

    @Option(help: "Worker threads, each with its own event loop; the default is min(4, cores).")
    var workers = defaults.workers

    @Option(help: "Largest accepted body_length in bytes; larger requests get an error and the connection is closed.")
    var maxBody = defaults.maxBodyBytes

    @Option(help: "Unsent output per connection, in bytes, past which reading from it pauses.")
    var maxOutput = defaults.maxOutputBytes

    @Option(help: "Open connections across all workers; past it new connections are closed at once.")
    var maxConnections = defaults.maxConnections

    @Option(help: "Seconds to complete a request once its first byte arrived; 0 disables.")
    var readTimeout = defaults.readTimeout / .seconds(1)

    @Option(help: "Seconds a connection may stay silent in both directions; 0 disables.")
    var idleTimeout = defaults.idleTimeout / .seconds(1)

    @Option(help: "Seconds to flush replies on shutdown before closing connections anyway.")
    var shutdownTimeout = defaults.shutdownTimeout / .seconds(1)

    @Option(help: "Storage state at start: read-write, read-only or maintenance.")
    var initialState: StorageState = .readWrite

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        _ = try makeConfiguration()
    }

    func run() throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "iprotod")
        let storage = Storage(state: initialState)
        var handlers = Handlers()
        handlers.registerStorage(storage)

        // Block the stop signals before any thread starts, then wait for them synchronously.
        let stopSignals = SignalSet([SIGINT, SIGTERM])
        stopSignals.block()

        let server: Server
        do {
            server = try Server(configuration: try makeConfiguration(), handlers: handlers)
            try server.start()
        } catch {
            throw ValidationError("\(error)")
        }
        print("iprotod listening on \(server.address)")
        fflush(nil)
        logger.info("started", metadata: ["address": "\(server.address)", "workers": "\(workers)",
                                          "state": "\(initialState.rawValue)"])

        let signal = stopSignals.wait()
        logger.info("stopping", metadata: ["signal": "\(signal)"])
        server.shutdown()
        server.wait()
        logger.info("stopped")
    }

    private func makeConfiguration() throws -> Configuration {
        let (host, port) = try parseListenAddress(listen)
        var configuration = Configuration(host: host, port: port)
        configuration.workers = workers
        configuration.maxBodyBytes = maxBody
        configuration.maxOutputBytes = maxOutput
        configuration.maxConnections = maxConnections
        configuration.readTimeout = try duration(readTimeout, "--read-timeout")
        configuration.idleTimeout = try duration(idleTimeout, "--idle-timeout")
        configuration.shutdownTimeout = try duration(shutdownTimeout, "--shutdown-timeout")
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.message)
        }
        return configuration
    }
}

private func duration(_ seconds: Double, _ flag: String) throws -> Duration {
    guard seconds.isFinite, seconds >= 0, seconds < 1e9 else {
        throw ValidationError("\(flag) must be a number of seconds ≥ 0, got \(seconds)")
    }
    return .milliseconds(Int64((seconds * 1000).rounded()))
}

/// Splits "HOST:PORT" or "[V6]:PORT".
func parseListenAddress(_ text: String) throws -> (host: String, port: UInt16) {
    guard let colon = text.lastIndex(of: ":") else {
        throw ValidationError("--listen must be HOST:PORT, got \"\(text)\"")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty, let port = UInt16(text[text.index(after: colon)...]) else {
        throw ValidationError("--listen must be HOST:PORT with a port 0-65535, got \"\(text)\"")
    }
    return (host, port)
}

extension StorageState: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}
