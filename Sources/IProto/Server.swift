import Dispatch
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
    private let started = Mutex(false)

    /// Validates the configuration and binds the listening socket, so
    /// ``address`` and ``port`` are known before ``start()``.
    public init(configuration: Configuration = Configuration(), handlers: Handlers) throws(ServerError) {
        do {
            try configuration.validate()
        } catch {
            throw ServerError(message: error.message)
        }
        self.configuration = configuration
        core = try CoreServer(configuration: configuration, dispatcher: Dispatcher(handlers: handlers.table))
    }

    /// The bound address as `host:port` (`[v6]:port` for IPv6).
    public var address: String { core.address }

    /// The bound port; the chosen one when the configuration asked for port 0.
    public var port: Int { core.port }

    /// Starts the worker threads and returns. Calling it twice is a programming error.
    public func start() throws(ServerError) {
        let first = started.withLock { started in
            defer { started = true }
            return !started
        }
        precondition(first, "Server.start() called twice")
        try core.start()
    }

    /// Stops accepting, lets every connection flush its replies (up to the
    /// shutdown timeout) and closes it. Returns at once; safe from any thread.
    public func shutdown() { core.stop() }

    /// Blocks until the workers have exited after ``shutdown()``.
    public func wait() { core.wait() }

    /// Starts the server and suspends until it stops; cancelling the task shuts it down.
    public func run() async throws(ServerError) {
        try start()
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
}

/// A server that could not be created or started; the message is one line for an operator.
public struct ServerError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
