import Dispatch
import Logging
import Synchronization

/// An iproto server: binds on creation, serves `handlers` on its worker threads once started.
///
/// ```swift
/// let server = try Server(configuration: .init(port: 0), handlers: handlers)
/// try await server.run()   // until the task is cancelled
/// ```
/// The library installs no signal handlers; a program decides when to call ``shutdown()``.
public final class Server: Sendable {
    public let configuration: Configuration
    private let core: CoreServer
    private let metrics: ServerMetrics
    private let started = Mutex(false)

    /// Validates the configuration and binds the listening socket, so
    /// ``address`` and ``port`` are known before ``start()``. Connection events
    /// and refused requests are logged to `logger`; metrics go to the
    /// swift-metrics backend the program bootstrapped.
    public init(configuration: Configuration = Configuration(), handlers: Handlers,
                logger: Logger = Logger(label: "iproto")) throws(ServerError) {
        do {
            try configuration.validate()
        } catch {
            throw ServerError(message: error.message)
        }
        self.configuration = configuration
        let dispatcher = Dispatcher(handlers)
        metrics = ServerMetrics(prefix: configuration.metricsPrefix, workers: configuration.workers)
        let addressLimiter = configuration.rateLimitPerIP > 0
            ? AddressRateLimiter(rate: configuration.rateLimitPerIP, burst: configuration.rateBurstPerIP) : nil
        let workers = (0..<configuration.workers).map { [metrics] index in
            WorkerContext(index: index, dispatcher: dispatcher, configuration: configuration,
                          addressLimiter: addressLimiter, serverMetrics: metrics, logger: logger)
        }
        core = try CoreServer(configuration: configuration,
                              context: CallbackContext(workers: workers, replyBarriers: handlers.replyBarriers))
    }

    /// The bound address as `host:port` (`[v6]:port` for IPv6).
    public var address: String { core.address }

    /// The bound port; the chosen one when the configuration asked for port 0.
    public var port: Int { core.port }

    /// Starts the worker threads and returns. Calling it twice is a programming error.
    public func start() throws(ServerError) {
        precondition(markStarted(), "Server.start() called twice")
        try core.start()
    }

    /// Records the start; false if the server had already started.
    private func markStarted() -> Bool {
        started.withLock { started in
            defer { started = true }
            return !started
        }
    }

    /// Stops accepting and drains: requests already received are answered,
    /// later ones get ``ReturnCode/shuttingDown``, and each connection is
    /// closed once its replies are sent (within the shutdown timeout).
    /// Returns at once; safe from any thread.
    public func shutdown() { core.stop() }

    /// Blocks until the workers have exited after ``shutdown()``.
    public func wait() { core.wait() }

    /// Starts the server (unless ``start()`` already did) and suspends until
    /// it stops; cancelling the task shuts it down.
    public func run() async throws(ServerError) {
        if markStarted() { try core.start() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    self.wait()
                    continuation.resume()
                }
            }
        } onCancel: {
            self.shutdown()
        }
    }

    /// Counters since start, summed over workers.
    public var statistics: ServerStatistics { core.statistics() }

    /// Publishes the core's counters (connections, bytes, limits) to the
    /// metrics backend. Call it before each scrape; per-request metrics are
    /// recorded as requests are served and need no call.
    public func publishMetrics() { metrics.publish(statistics) }
}

/// A server that could not be created or started; the message is one line for an operator.
public struct ServerError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
