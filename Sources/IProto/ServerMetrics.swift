import Metrics
import Synchronization

/// Metric names, each under the configured prefix (e.g. `iprotod_requests_total`), with their help text.
enum MetricName {
    static let requests = "requests_total"
    static let requestDuration = "request_duration_seconds"
    static let protocolErrors = "protocol_errors_total"
    static let rateLimited = "rate_limited_total"
    static let connectionsActive = "connections_active"
    static let connectionsAccepted = "connections_accepted_total"
    static let connectionsClosed = "connections_closed_total"
    static let receivedBytes = "received_bytes_total"
    static let sentBytes = "sent_bytes_total"
    static let outputPaused = "output_paused_total"
    static let turnsYielded = "turns_yielded_total"
    static let acceptErrors = "accept_errors_total"
    static let permissionDenied = "permission_denied_total"
    static let workers = "workers"
    static let bufferedBytes = "buffered_bytes"
    static let memoryBudgetPaused = "memory_budget_paused_total"

    static let help: [String: String] = [
        requests: "Requests answered, by function, return code and worker thread.",
        requestDuration: "Time to run a request and encode its reply, by function and worker thread.",
        protocolErrors: "Requests that broke the protocol or the API's rules, by kind.",
        rateLimited: "Requests refused with return code 7, by the limit: connection (its own bucket) or address (the bucket its client address shares).",
        connectionsActive: "Open client connections.",
        connectionsAccepted: "Client connections accepted.",
        connectionsClosed: "Client connections closed, by reason.",
        receivedBytes: "Bytes read from clients.",
        sentBytes: "Bytes written to clients.",
        outputPaused: "Times reading from a connection paused because its unsent output reached the cap.",
        turnsYielded: "Times a connection ran its 128 requests for one loop turn and waited for the next, after the others.",
        acceptErrors: "accept() failures such as running out of file descriptors.",
        permissionDenied: "Requests for administrative functions refused with return code 10: the client's address is outside the admin allowlist.",
        workers: "Worker threads, each with its own event loop.",
        bufferedBytes: "Bytes the server holds for stashed input and unsent output, across connections (the memory budget's measure).",
        memoryBudgetPaused: "Times reading from a connection paused because the server's buffered bytes passed the memory budget.",
    ]
}

extension Server {
    /// Help text of every metric the server records, by full name, for
    /// backends that publish it (see IProtoPrometheus's DocumentedMetricsFactory).
    public static func metricHelp(prefix: String) -> [String: String] {
        Dictionary(uniqueKeysWithValues: MetricName.help.map { ("\(prefix)_\($0.key)", $0.value) })
    }
}

/// Per-request metrics of one worker. Each worker records into its own
/// handles (label `worker`), so workers never contend on a counter or a
/// histogram lock. Handles are found by function index (the dispatcher's),
/// then by a short scan of the return codes seen. Confined to its worker thread.
final class WorkerMetrics {
    private let prefix: String
    private let worker: String
    private let names: [String]
    // Confined to one worker thread, like WorkerContext: no dynamic exclusivity checks.
    /// Request counters by function index (the last slot: unknown functions), then by code.
    @exclusivity(unchecked) private var requests: [[(code: ReturnCode, counter: Counter)]]
    /// Seconds in an aggregating recorder (a value histogram) rather than a
    /// swift-metrics Timer: swift-prometheus' duration histogram compares
    /// `Duration`s out of line, which cost about a tenth of a request. The
    /// handler is called directly because `Recorder.record` converts through
    /// an unspecialized generic initializer.
    private let durations: [any RecorderHandler]

    init(prefix: String, worker: Int, names: [String]) {
        self.prefix = prefix
        self.worker = String(worker)
        self.names = names
        requests = Array(repeating: [], count: names.count + 1)
        durations = names.map { name in
            MetricsSystem.factory.makeRecorder(label: "\(prefix)_\(MetricName.requestDuration)",
                                               dimensions: [("function", name), ("worker", String(worker))],
                                               aggregate: true)
        }
    }

    /// Counts a request and its handling time; `function` is nil for an unknown
    /// function, whose requests share one label value, keeping label values bounded.
    func record(function: Int?, code: ReturnCode, nanoseconds: Int64) {
        let slot = function ?? names.count
        if let entry = requests[slot].first(where: { $0.code == code }) {
            entry.counter.increment()
        } else {
            let counter = Counter(label: "\(prefix)_\(MetricName.requests)",
                                  dimensions: [("function", function.map { names[$0] } ?? "unknown"),
                                               ("code", "\(code.rawValue)"), ("worker", worker)])
            requests[slot].append((code, counter))
            counter.increment()
        }
        if let function { durations[function].record(Double(nanoseconds) / 1e9) }
    }
}

/// Server-wide metrics: the core's counters, published on demand (before a
/// scrape) as deltas, and the few events counted as they happen.
final class ServerMetrics: Sendable {
    private let connectionsActive: Gauge
    private let connectionsAccepted: Counter
    private let connectionsClosed: [CloseReason: Counter]
    private let receivedBytes: Counter
    private let sentBytes: Counter
    private let outputPaused: Counter
    private let turnsYielded: Counter
    private let acceptErrors: Counter
    private let bodyTooLarge: Counter
    private let bufferedBytes: Gauge
    private let memoryBudgetPaused: Counter
    private let violations: [ReturnCode: Counter]
    let rateLimitedPerConnection: Counter
    let rateLimitedPerAddress: Counter
    let permissionDenied: Counter
    private let published = Mutex(ServerStatistics())

    init(prefix: String, workers: Int) {
        func name(_ suffix: String) -> String { "\(prefix)_\(suffix)" }
        connectionsActive = Gauge(label: name(MetricName.connectionsActive))
        connectionsAccepted = Counter(label: name(MetricName.connectionsAccepted))
        connectionsClosed = Dictionary(uniqueKeysWithValues: CloseReason.allCases.map {
            ($0, Counter(label: name(MetricName.connectionsClosed), dimensions: [("reason", $0.rawValue)]))
        })
        receivedBytes = Counter(label: name(MetricName.receivedBytes))
        sentBytes = Counter(label: name(MetricName.sentBytes))
        outputPaused = Counter(label: name(MetricName.outputPaused))
        turnsYielded = Counter(label: name(MetricName.turnsYielded))
        acceptErrors = Counter(label: name(MetricName.acceptErrors))
        bufferedBytes = Gauge(label: name(MetricName.bufferedBytes))
        memoryBudgetPaused = Counter(label: name(MetricName.memoryBudgetPaused))
        let codes: [ReturnCode] = [.unknownFunction, .malformedBody, .badArguments, .outOfRange, .tooLong, .bodyTooLarge]
        violations = Dictionary(uniqueKeysWithValues: codes.map {
            ($0, Counter(label: name(MetricName.protocolErrors), dimensions: [("kind", $0.violation!)]))
        })
        bodyTooLarge = violations[.bodyTooLarge]!
        rateLimitedPerConnection = Counter(label: name(MetricName.rateLimited), dimensions: [("limit", "connection")])
        rateLimitedPerAddress = Counter(label: name(MetricName.rateLimited), dimensions: [("limit", "address")])
        permissionDenied = Counter(label: name(MetricName.permissionDenied))
        Gauge(label: name(MetricName.workers)).record(workers)
    }

    /// Counts a request the client got wrong (the core's own rejections are published separately).
    func recordViolation(_ code: ReturnCode) {
        violations[code]?.increment()
    }

    /// Brings the metrics up to `statistics`: gauges are set, counters advance by what changed.
    func publish(_ statistics: ServerStatistics) {
        published.withLock { last in
            func advance(_ counter: Counter, _ now: UInt64, _ before: UInt64) {
                if now > before { counter.increment(by: Int64(now - before)) }
            }
            connectionsActive.record(Int64(statistics.connectionsActive))
            advance(connectionsAccepted, statistics.connectionsAccepted, last.connectionsAccepted)
            for (reason, counter) in connectionsClosed {
                advance(counter, statistics.closed(reason), last.closed(reason))
            }
            advance(receivedBytes, statistics.bytesIn, last.bytesIn)
            advance(sentBytes, statistics.bytesOut, last.bytesOut)
            advance(outputPaused, statistics.outputPaused, last.outputPaused)
            advance(turnsYielded, statistics.turnsYielded, last.turnsYielded)
            advance(acceptErrors, statistics.acceptErrors, last.acceptErrors)
            advance(bodyTooLarge, statistics.bodyTooLarge, last.bodyTooLarge)
            bufferedBytes.record(Int64(statistics.bufferedBytes))
            advance(memoryBudgetPaused, statistics.memoryBudgetPaused, last.memoryBudgetPaused)
            last = statistics
        }
    }
}
