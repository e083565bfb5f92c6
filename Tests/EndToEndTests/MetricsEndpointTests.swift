import Foundation
import IProto
import IProtoTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Prometheus endpoint's own limits, through the real binary: it keeps
/// serving after running out of file descriptors, holds a bounded number of
/// connections and closes idle ones.
///
/// The limits are set through the environment (IPROTOD_METRICS_…), which a
/// binary without these options ignores, so the same tests show how an older
/// iprotod fails.
@Suite struct MetricsEndpointTests {
    /// A flood of iproto connections fills the descriptor table (64 here), so
    /// the endpoint's accept fails with EMFILE while a scrape waits; once the
    /// flood is gone that scrape and the next are answered.
    @Test func scrapesAreAnsweredOnceADescriptorExhaustingFloodIsGone() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("iprotod-fd-\(UUID()).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let server = try ServerProcess(["--workers", "1"], log: log)
        let pid = server.process.processIdentifier
        // Soft and hard limit both, set from outside after start, so the process cannot raise it again.
        try #require(spawnAndWait(["/usr/bin/prlimit", "--pid", "\(pid)", "--nofile=64:64"]) == 0)
        _ = try server.scrapeMetrics()

        var flood = try (0..<80).map { _ in try server.connect() }
        #expect(eventually { openDescriptors(pid) >= 64 }, "the flood did not fill iprotod's descriptor table")
        // Scrapes until the endpoint's own accept fails: a descriptor another thread frees
        // for a moment may let one in, and that one then takes it.
        var waiting: [TestConnection] = []
        #expect(eventually(20) {
            if let scrape = try? TestConnection(port: server.metricsPort),
               (try? scrape.send(Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))) != nil {
                waiting.append(scrape)
            }
            usleep(50_000)
            return logText(log).contains("metrics endpoint cannot accept connections")
        }, "the endpoint's accept never failed: \(logText(log))")

        flood = []
        #expect(flood.isEmpty)
        let answer = String(decoding: try waiting.last!.receiveUntilClosed(), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "the scrape waiting through the flood got: \(answer.prefix(100))")
        #expect(eventually { (try? server.scrapeMetrics()) != nil }, "no scrape after the flood")
        #expect(try server.metric("iprotod_metrics_accept_errors_total") >= 1)
        #expect(try server.connect().read(0).returnCode == .ok)
    }

    /// Past --metrics-max-connections a new connection closes the one quiet
    /// longest: idle clients cannot lock a scraper out.
    @Test func connectionsPastTheCapCloseTheQuietestAndAreCounted() throws {
        // No idle timeout: only the cap closes connections here.
        let server = try ServerProcess(environment: ["IPROTOD_METRICS_MAX_CONNECTIONS": "4",
                                                     "IPROTOD_METRICS_IDLE_TIMEOUT": "0"])
        let idle = try (0..<10).map { _ in try TestConnection(port: server.metricsPort, timeout: 5) }
        // The scrape is the 11th arrival: 4 fit, so the 7 oldest idle ones are closed, in accept order.
        _ = try server.scrapeMetrics()
        for (index, connection) in idle.prefix(7).enumerated() {
            #expect(connection.nextOutcome() == .closed, "idle connection \(index) is still open")
        }
        for connection in idle.suffix(3) { connection.setTimeout(0.2) }
        #expect(idle.suffix(3).allSatisfy { $0.nextOutcome() == .timedOut }, "a newer connection was closed instead")
        let samples = try server.metrics()
        #expect(samples["iprotod_metrics_connections_closed_total{reason=\"over_limit\"}"] == 7)
        #expect(samples["iprotod_metrics_connections_closed_total{reason=\"served\"}"] == 1, "the first scrape's close")
    }

    /// Connections that complete no request within --metrics-idle-timeout are
    /// closed: silent ones, one trickling a request, and a kept-alive one after its reply.
    @Test func idleConnectionsAreClosedAfterTheIdleTimeout() throws {
        let server = try ServerProcess(environment: ["IPROTOD_METRICS_IDLE_TIMEOUT": "1"])
        let opened = Date()
        let silent = try (0..<3).map { _ in try TestConnection(port: server.metricsPort, timeout: 10) }
        let trickling = try TestConnection(port: server.metricsPort, timeout: 10)
        try trickling.send(Array("GET /metr".utf8))
        let keptAlive = try TestConnection(port: server.metricsPort, timeout: 10)
        try keptAlive.send(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(try readHTTPResponse(keptAlive).status == 200)

        for connection in silent + [trickling, keptAlive] { #expect(connection.nextOutcome() == .closed) }
        #expect(Date().timeIntervalSince(opened) >= 1, "closed before the idle timeout")
        #expect(try server.metric("iprotod_metrics_connections_closed_total", ["reason": "idle_timeout"]) == 5)
    }

    /// A request head over --metrics-max-request gets 431 and the connection is closed.
    @Test func requestHeadsOverTheLimitGet431() throws {
        let server = try ServerProcess(environment: ["IPROTOD_METRICS_MAX_REQUEST": "256"])
        let connection = try TestConnection(port: server.metricsPort, timeout: 10)
        try connection.send(Array(("GET /metrics HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: 300)).utf8))
        let answer = String(decoding: try connection.receiveUntilClosed(), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 431 "), "got: \(answer.prefix(100))")
        #expect(try server.metric("iprotod_metrics_connections_closed_total", ["reason": "too_large"]) == 1)
        #expect(try server.metric("iprotod_workers") >= 1, "a scrape after the refused request")
    }

    /// Only GET /metrics is served; one connection carries several requests, pipelined.
    @Test func pathsMethodsAndKeepAlive() throws {
        let server = try ServerProcess()
        let connection = try TestConnection(port: server.metricsPort, timeout: 10)
        try connection.send(Array(("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" + "GET /other HTTP/1.1\r\nHost: x\r\n\r\n"
            + "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            + "GET /metrics?name=x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").utf8))
        let first = try readHTTPResponse(connection)
        #expect(first.status == 200)
        #expect(first.body.contains("# HELP iprotod_metrics_accept_errors_total "))
        #expect(try readHTTPResponse(connection).status == 404)
        let post = try readHTTPResponse(connection)
        #expect(post.status == 405)
        #expect(post.headers.contains("allow: GET"))
        #expect(try readHTTPResponse(connection).status == 200)
        #expect(connection.nextOutcome() == .closed)
    }

    @Test func helpNamesTheEndpointLimitsWithTheirDefaults() throws {
        let help = try ServerProcess.run(ServerProcess.binaryPath, ["--help"]).output
        for (flag, value) in [("--metrics-max-connections", "16"), ("--metrics-idle-timeout", "10.0"),
                              ("--metrics-max-request", "8192")] {
            // The option's entry: from its name to the next option's.
            let entry = help.components(separatedBy: "\n  --").first { $0.hasPrefix(flag.dropFirst(2) + " ") } ?? ""
            #expect(entry.contains("(default: \(value))"), "\(flag): \(entry)")
        }
        let invalid = try ServerProcess.run(ServerProcess.binaryPath, ["--metrics-max-connections", "0"])
        #expect(invalid.status != 0)
        #expect(invalid.errors.contains("max connections must be 1…1024"), "stderr: \(invalid.errors)")
    }
}

private func openDescriptors(_ pid: Int32) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
}

private func logText(_ path: String) -> String {
    (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
}

/// One HTTP/1.1 response with a Content-Length body; header names lowercased.
private func readHTTPResponse(_ connection: TestConnection) throws -> (status: Int, headers: [String], body: String) {
    var head: [UInt8] = []
    while !head.ends(with: Array("\r\n\r\n".utf8)) { head += try connection.receive(exactly: 1) }
    let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n").map(String.init)
    guard let statusLine = lines.first, statusLine.hasPrefix("HTTP/1.1 "),
          let status = Int(statusLine.dropFirst(9).prefix(3))
    else { throw TestSocketError("not an HTTP response: \(lines.first ?? "")") }
    let headers = lines.dropFirst().map { line -> String in
        guard let colon = line.firstIndex(of: ":") else { return line }
        return line[..<colon].lowercased() + line[colon...]
    }
    let length = headers.first { $0.hasPrefix("content-length:") }.flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
    return (status, headers, String(decoding: try connection.receive(exactly: length), as: UTF8.self))
}

extension Array where Element: Equatable {
    fileprivate func ends(with suffix: [Element]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
