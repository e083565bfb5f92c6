import Logging

#if canImport(Glibc)
import Glibc
#endif

/// What a connection carries from one request to the next. The bridge keeps
/// it in the core's per-connection slot, so it costs no allocation.
struct ConnectionState {
    var bucket = TokenBucket()
    var warnings = LogThrottle()
    /// The client's entry in the shared per-address limiter; 0 when that limit is off.
    var addressBucket: UInt64 = 0
    /// Whether the client's address is in ``Configuration/adminFrom``, decided when the connection opened.
    var admin = false
}

/// A connection event reported by the core.
enum ConnectionEvent {
    case opened
    case closed(CloseReason)
    /// Refused at accept, before it became a connection.
    case rejected(CloseReason)
}

/// Everything one worker thread needs to serve requests: reusable buffers,
/// its own metrics handles, the shared dispatcher and the admission rules.
/// @unchecked Sendable: confined to its worker thread; only the core's
/// callbacks for that worker touch it.
final class WorkerContext: @unchecked Sendable {
    let index: Int
    // The mutable properties skip dynamic exclusivity checks (a tenth of a
    // request's instructions): one thread uses this object and never re-enters it.
    /// The current request's body, copied here from the core's buffer.
    @exclusivity(unchecked) var body: [UInt8] = []
    /// The current response's body.
    @exclusivity(unchecked) var writer = MessagePackWriter(capacity: 512, referencingLargeBinaries: true)

    private let dispatcher: Dispatcher
    private let rateLimit: Double
    private let rateBurst: Double
    private let addressLimiter: AddressRateLimiter?
    private let rateLimitPerIP: Double
    private let adminFrom: [CIDR]
    /// The allowlist as a permission-denied message names it.
    private let adminFromText: String
    private let adminFunctions: FunctionMask
    private let metrics: WorkerMetrics
    private let serverMetrics: ServerMetrics
    private let logger: Logger
    @exclusivity(unchecked) private var rejections = LogThrottle()
    @exclusivity(unchecked) private var acceptErrors = LogThrottle()

    init(index: Int, dispatcher: Dispatcher, configuration: Configuration, addressLimiter: AddressRateLimiter?,
         serverMetrics: ServerMetrics, logger: Logger) {
        self.index = index
        self.dispatcher = dispatcher
        self.rateLimit = configuration.rateLimit
        self.rateBurst = Double(configuration.rateBurst)
        self.addressLimiter = addressLimiter
        self.rateLimitPerIP = configuration.rateLimitPerIP
        self.adminFrom = configuration.adminFrom
        self.adminFromText = adminFrom.isEmpty ? "(empty)" : adminFrom.map(\.description).joined(separator: ",")
        self.adminFunctions = configuration.adminFunctions
        self.metrics = WorkerMetrics(prefix: configuration.metricsPrefix, worker: index, names: dispatcher.names)
        self.serverMetrics = serverMetrics
        var logger = logger
        logger[metadataKey: "worker"] = "\(index)"
        self.logger = logger
    }

    /// The state of a connection that just opened from `address`, whose key is `key`:
    /// its place in the per-address limiter, and whether it may call admin functions.
    func opened(address: IPAddress, key: IPAddress) -> ConnectionState {
        var state = ConnectionState()
        state.admin = adminFrom.contains { $0.contains(address) }
        state.addressBucket = addressLimiter?.open(key, now: Double(monotonicNanoseconds()) / 1e9) ?? 0
        return state
    }

    /// Releases what ``opened(address:key:)`` took.
    func closed(_ state: ConnectionState) {
        if state.addressBucket != 0 {
            addressLimiter?.close(state.addressBucket, now: Double(monotonicNanoseconds()) / 1e9)
        }
    }

    /// Serves the request whose body is in ``body``, leaving the response body
    /// in ``writer``: admission (the connection's and its address's rate limits,
    /// the admin allowlist), dispatch, metrics, warnings.
    func serve(funcID: UInt32, requestID: UInt32, connection: inout ConnectionState,
               peer: () -> String, startedAt: Int64) -> ReturnCode {
        writer.reset()
        let function = dispatcher.index(of: funcID)
        let now = Double(startedAt) / 1e9
        let code: ReturnCode
        var reason: String?
        // The connection's own bucket first: a connection over its limit then takes nothing from its address's.
        if rateLimit > 0, !connection.bucket.admit(now: now, rate: rateLimit, burst: rateBurst) {
            code = .rateLimited
            reason = "rate_limited"
            writer.writeString("rate limit of \(rateLimit.formatted) requests/s per connection exceeded")
            serverMetrics.rateLimitedPerConnection.increment()
        } else if connection.addressBucket != 0, let addressLimiter,
                  !addressLimiter.admit(connection.addressBucket, now: now) {
            code = .rateLimited
            reason = "rate_limited_per_address"
            writer.writeString("rate limit of \(rateLimitPerIP.formatted) requests/s per client address exceeded")
            serverMetrics.rateLimitedPerAddress.increment()
        } else if !connection.admin, adminFunctions.contains(funcID) {
            code = .permissionDenied
            reason = "permission_denied"
            let name = function.map { dispatcher.names[$0] } ?? "function 0x" + hex(funcID)
            writer.writeString("\(name) is allowed only from --admin-from \(adminFromText); \(host(of: peer())) is not")
            serverMetrics.permissionDenied.increment()
        } else {
            code = dispatcher.respond(to: Request(funcID: funcID, requestID: requestID, body: body),
                                      function: function, into: &writer)
            reason = code.violation
        }
        if let reason {
            serverMetrics.recordViolation(code)
            warn(code, reason: reason, function: function, funcID: funcID, requestID: requestID,
                 connection: &connection, peer: peer, now: startedAt)
        }
        metrics.record(function: function, code: code, nanoseconds: monotonicNanoseconds() - startedAt)
        return code
    }

    /// Logs a refused request at warning, at most once per second per connection.
    private func warn(_ code: ReturnCode, reason: String, function: Int?, funcID: UInt32, requestID: UInt32,
                      connection: inout ConnectionState, peer: () -> String, now: Int64) {
        guard logger.logLevel <= .warning,
              let suppressed = connection.warnings.admit(now: Double(now) / 1e9) else { return }
        var metadata: Logger.Metadata = [
            "peer": "\(peer())", "func": "\(function.map { dispatcher.names[$0] } ?? "0x" + hex(funcID))",
            "request_id": "\(requestID)", "code": "\(code.rawValue)", "reason": "\(reason)",
        ]
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        logger.warning("request refused", metadata: metadata)
    }

    /// Logs connection life: open and ordinary closes at debug, closes that a
    /// limit forced at warning (refusals throttled to one line per second per worker).
    func record(_ event: ConnectionEvent, peer: () -> String) {
        switch event {
        case .opened:
            logger.debug("connection opened", metadata: ["peer": "\(peer())"])
        case .closed(let reason):
            let level: Logger.Level = switch reason {
            case .peer, .shutdown: .debug
            case .idleTimeout: .info
            default: .warning
            }
            logger.log(level: level, "connection closed", metadata: ["peer": "\(peer())", "reason": "\(reason.rawValue)"])
        case .rejected(let reason):
            guard logger.logLevel <= .warning,
                  let suppressed = rejections.admit(now: Double(monotonicNanoseconds()) / 1e9) else { return }
            var metadata: Logger.Metadata = ["peer": "\(peer())", "reason": "\(reason.rawValue)"]
            if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
            logger.warning("connection refused", metadata: metadata)
        }
    }

    /// Logs a failed accept() at error, at most one line per second per worker:
    /// the clients it leaves waiting in the kernel's queue would otherwise go unnoticed.
    func acceptFailed(errno code: Int32, message: String) {
        guard let suppressed = acceptErrors.admit(now: Double(monotonicNanoseconds()) / 1e9) else { return }
        var metadata: Logger.Metadata = ["error": "\(message)", "errno": "\(code)"]
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        logger.error("accept failed; new connections wait in the kernel's queue", metadata: metadata)
    }
}

/// The host part of a peer as the core formats it: "127.0.0.2" of "127.0.0.2:5000", "::1" of "[::1]:5000".
func host(of peer: String) -> String {
    guard let colon = peer.lastIndex(of: ":") else { return peer }
    let host = peer[..<colon]
    return host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : String(host)
}

/// Nanoseconds on the monotonic clock.
func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

extension Double {
    /// "100" rather than "100.0" for whole numbers.
    var formatted: String { self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}
