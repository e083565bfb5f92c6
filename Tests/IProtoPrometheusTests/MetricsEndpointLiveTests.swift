@testable import IProtoPrometheus
import IProtoTestSupport
import Logging
import Prometheus
import Synchronization
import Testing

/// The endpoint as a library, live on 127.0.0.1 port 0: it serves the registry
/// after `beforeScrape`, and `stop()` closes its connections and its port.
@Suite struct MetricsEndpointLiveTests {
    @Test func servesTheRegistryUntilStopped() throws {
        let registry = PrometheusCollectorRegistry()
        let scrapes = Mutex(0)
        let gauge = registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "scrapes_seen", unitName: "", helpText: "test"))
        var configuration = MetricsEndpoint.Configuration(host: "127.0.0.1", port: 0)
        configuration.metricsPrefix = "test"
        let endpoint = try MetricsEndpoint(configuration: configuration, registry: registry, logger: Logger(label: "test")) {
            gauge.set(Double(scrapes.withLock { $0 += 1; return $0 }))
        }
        let port = try #require(Int(endpoint.address.split(separator: ":").last ?? ""))
        endpoint.start()

        let scrape = try TestConnection(port: port, timeout: 10)
        try scrape.send(Array("GET /metrics HTTP/1.0\r\n\r\n".utf8))
        let text = String(decoding: try scrape.receiveUntilClosed(), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
        #expect(text.contains("\nscrapes_seen 1.0\n"))
        #expect(text.contains("# HELP test_metrics_accept_errors_total "))

        // Kept alive after a request, so the endpoint holds it (not the listen backlog) when it stops.
        let open = try TestConnection(port: port, timeout: 10)
        try open.send(Array("GET /nothing HTTP/1.1\r\n\r\n".utf8))
        let notFound = HTTPResponse.error(status: 404, reason: "Not Found", keepAlive: true)
        #expect(try open.receive(exactly: notFound.count) == notFound)
        endpoint.stop()
        #expect(open.nextOutcome() == .closed)
        #expect(throws: (any Error).self) { try TestConnection(port: port, timeout: 1) }
        endpoint.stop()
    }

    @Test func invalidLimitsAndAddressesFailAtInit() {
        var configuration = MetricsEndpoint.Configuration(host: "127.0.0.1", port: 0)
        configuration.maxConnections = 0
        #expect(throws: MetricsEndpointError.self) {
            try MetricsEndpoint(configuration: configuration, registry: PrometheusCollectorRegistry(), logger: Logger(label: "test")) {}
        }
        #expect(throws: MetricsEndpointError.self) {
            try MetricsEndpoint(configuration: .init(host: "not-an-address", port: 0), registry: PrometheusCollectorRegistry(),
                                logger: Logger(label: "test")) {}
        }
    }
}
