import Dispatch
import Foundation
import Logging
import Prometheus
import Synchronization

/// Serves a Prometheus registry in the text exposition format at `GET /metrics`,
/// on a thread of its own (see ``EndpointLoop`` for how it keeps serving under
/// connection floods and file-descriptor exhaustion).
public final class MetricsEndpoint: Sendable {
    /// Where to listen and the endpoint's limits; every field has its default here.
    public struct Configuration: Sendable {
        /// A numeric IPv4 or IPv6 address ("localhost" is taken as 127.0.0.1).
        public var host: String
        /// Port 0 picks a free port.
        public var port: UInt16
        /// Open connections. A connection arriving with this many open closes
        /// the one that made no progress for longest. Default 16: Prometheus
        /// scrapes over one connection per target.
        public var maxConnections = 16
        /// Time a connection may go without completing a request or taking
        /// response bytes before it is closed. Default 10 s; `.zero` disables.
        public var idleTimeout: Duration = .seconds(10)
        /// Largest request head (request line and headers); a larger one is
        /// answered 431 and its connection closed. Default 8 KiB.
        public var maxRequestBytes = 8192
        /// Pause after accept() fails (EMFILE, ENFILE…) before accepting again,
        /// instead of spinning on a socket that stays readable. Default 100 ms.
        public var acceptRetryInterval: Duration = .milliseconds(100)
        /// Metric names start with "<prefix>_metrics_". Default "iproto".
        public var metricsPrefix = "iproto"

        public init(host: String = "127.0.0.1", port: UInt16 = 8088) {
            self.host = host
            self.port = port
        }

        /// Throws the first invalid field.
        public func validate() throws(MetricsEndpointError) {
            guard (1...1024).contains(maxConnections) else {
                throw MetricsEndpointError(message: "max connections must be 1…1024, got \(maxConnections)")
            }
            guard idleTimeout >= .zero else { throw MetricsEndpointError(message: "idle timeout must not be negative") }
            guard (64...(1 << 20)).contains(maxRequestBytes) else {
                throw MetricsEndpointError(message: "max request bytes must be 64…1048576, got \(maxRequestBytes)")
            }
            guard acceptRetryInterval > .zero else {
                throw MetricsEndpointError(message: "accept retry interval must be positive")
            }
        }
    }

    /// The bound address, "host:port" or "[v6]:port".
    public let address: String
    private let listenFD: Int32
    private let wake: (read: Int32, write: Int32)
    /// Builds the loop on the endpoint's thread, which then owns it.
    private let makeLoop: @Sendable () -> EndpointLoop
    private let state = Mutex(State.bound)
    private let finished = DispatchSemaphore(value: 0)

    private enum State { case bound, serving, stopped }

    /// Binds and listens, so that a bad address or a port in use fails here;
    /// ``start()`` begins serving. `beforeScrape` runs before each scrape,
    /// e.g. ``IProto/Server/publishMetrics()``.
    public init(configuration: Configuration, registry: PrometheusCollectorRegistry, logger: Logger,
                beforeScrape: @escaping @Sendable () -> Void) throws(MetricsEndpointError) {
        try configuration.validate()
        let host = configuration.host == "localhost" ? "127.0.0.1" : configuration.host
        (listenFD, address) = try EndpointSocket.listen(host: host, port: configuration.port, backlog: 128)
        do {
            wake = try EndpointSocket.wakePipe()
        } catch {
            EndpointSocket.close(listenFD)
            throw error
        }
        let prefix = "\(configuration.metricsPrefix)_metrics"
        let acceptErrors = registry.makeCounter(descriptor: MetricNameDescriptor(
            metricName: "\(prefix)_accept_errors_total", unitName: "",
            helpText: "accept() failures of the metrics endpoint (out of file descriptors…); it pauses accepting briefly and retries."))
        let closedDescriptor = MetricNameDescriptor(metricName: "\(prefix)_connections_closed_total", unitName: "",
                                                    helpText: "Connections to the metrics endpoint closed, by reason.")
        let closed = Dictionary(uniqueKeysWithValues: EndpointCloseReason.allCases.map { reason in
            (reason, registry.makeCounter(descriptor: closedDescriptor, labels: [("reason", reason.rawValue)]))
        })
        makeLoop = { [listenFD, wake] in
            EndpointLoop(listenFD: listenFD, wakeFD: wake.read, limits: configuration, acceptErrors: acceptErrors,
                         closed: closed, logger: logger, scrape: { beforeScrape(); return registry.emitToBuffer() })
        }
    }

    /// Serves on a thread of its own until ``stop()``, even once this object is
    /// released (the thread holds what it needs). Calling it again does nothing.
    public func start() {
        guard state.withLock({ state in
            guard state == .bound else { return false }
            state = .serving
            return true
        }) else { return }
        let thread = Thread { [makeLoop, finished] in
            makeLoop().run()
            finished.signal()
        }
        thread.name = "metrics"
        thread.start()
    }

    /// Stops serving, closes every connection and the listening socket, and
    /// returns once the endpoint's thread has finished. Calling it again does nothing.
    public func stop() {
        let previous = state.withLock { state in
            defer { state = .stopped }
            return state
        }
        guard previous != .stopped else { return }
        if previous == .serving {
            EndpointSocket.wake(wake.write)
            finished.wait()
        }
        for fd in [listenFD, wake.read, wake.write] { EndpointSocket.close(fd) }
    }
}

/// The endpoint could not start, or was configured wrongly.
public struct MetricsEndpointError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
