import FlyingFox
import FlyingSocks
import Foundation
import Logging
import Prometheus
import Synchronization

/// Serves a Prometheus registry in the text exposition format at `GET /metrics`.
public final class MetricsEndpoint: Sendable {
    private let server: HTTPServer

    /// `host` is a numeric IPv4 or IPv6 address; port 0 picks a free port.
    /// `beforeScrape` runs before each scrape, e.g. ``IProto/Server/publishMetrics()``.
    public init(host: String, port: UInt16, registry: PrometheusCollectorRegistry, logger: Logger,
                beforeScrape: @escaping @Sendable () -> Void) throws {
        let httpLogger = HTTPLogger(logger: logger)
        server = host.contains(":")
            ? HTTPServer(address: try .inet6(ip6: host, port: port), logger: httpLogger)
            : HTTPServer(address: try .inet(ip4: host == "localhost" ? "127.0.0.1" : host, port: port), logger: httpLogger)
        let handler: @Sendable (HTTPRequest) async throws -> HTTPResponse = { _ in
            beforeScrape()
            return HTTPResponse(statusCode: .ok,
                                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                                body: Data(registry.emitToBuffer()))
        }
        Task { [server] in await server.appendRoute("GET /metrics", handler: handler) }
    }

    /// Starts serving and returns the bound address ("host:port") once the
    /// socket listens; throws the bind error if it cannot.
    public func start(timeout: Duration = .seconds(5)) async throws -> String {
        let failure = Mutex<(any Error)?>(nil)
        Task { [server] in
            do { try await server.run() } catch { failure.withLock { $0 = error } }
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let error = failure.withLock({ $0 }) { throw error }
            switch await server.listeningAddress {
            case .ip4(let host, let port)?: return "\(host):\(port)"
            case .ip6(let host, let port)?: return "[\(host)]:\(port)"
            case .unix(let path)?: return path
            case nil: try await Task.sleep(for: .milliseconds(5))
            }
        }
        throw MetricsEndpointError(message: "not listening after \(timeout)")
    }

    public func stop() async { await server.stop() }
}

/// The endpoint could not start.
public struct MetricsEndpointError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// FlyingFox's log lines, sent to swift-log one level lower: the endpoint is not the server's main job.
private struct HTTPLogger: FlyingSocks.Logging {
    let logger: Logger
    func logDebug(_ debug: @autoclosure () -> String) { logger.trace("\(debug())") }
    func logInfo(_ info: @autoclosure () -> String) { logger.debug("\(info())") }
    func logWarning(_ warning: @autoclosure () -> String) { logger.info("\(warning())") }
    func logError(_ error: @autoclosure () -> String) { logger.warning("\(error())") }
    func logCritical(_ critical: @autoclosure () -> String) { logger.error("\(critical())") }
}
