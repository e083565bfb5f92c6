import Logging
import Prometheus

#if canImport(Glibc)
import Glibc
#endif

/// Why the endpoint closed a connection: the `reason` label of
/// `<prefix>_metrics_connections_closed_total`.
enum EndpointCloseReason: String, CaseIterable {
    /// The client closed or reset it.
    case peer
    /// After a response to a request that asked for the close (`Connection: close`, HTTP/1.0).
    case served
    /// It neither completed a request nor took response bytes for the idle timeout.
    case idleTimeout = "idle_timeout"
    /// A new connection arrived with `maxConnections` open, and this one had been quiet longest.
    case overLimit = "over_limit"
    /// Its request head was larger than `maxRequestBytes` (answered 431).
    case tooLarge = "too_large"
    /// Its request was not HTTP/1.x or came with a body (answered 400).
    case badRequest = "bad_request"
}

/// The endpoint's event loop: one thread, one `poll` over the wake pipe, the
/// listening socket and every open connection. Everything here is owned by
/// that thread; other threads only write to the wake pipe.
///
/// Limits: `maxConnections` open at once (a new one closes the connection quiet
/// longest, so idle or trickling clients cannot lock a scraper out), an idle
/// timeout measured from the last *progress* (accepted, a request completed,
/// response bytes taken: bytes of an unfinished request do not count, so a
/// trickled request times out too), and `maxRequestBytes` per request head.
/// An accept error (out of descriptors…) stops accepting for
/// `acceptRetryInterval`, then accepting resumes; the loop never gives up.
final class EndpointLoop {
    /// One client connection. A reply is sent completely before the next
    /// request is parsed, so pipelined requests are answered in order.
    private final class Connection {
        let fd: Int32
        /// Received, not yet parsed: at most one request head's worth.
        var input: [UInt8] = []
        /// The reply being sent, and how much of it went.
        var output: [UInt8] = []
        var sent = 0
        /// Set with a reply after which the connection closes.
        var closeWhenSent: EndpointCloseReason?
        var lastProgress: ContinuousClock.Instant
        /// Accept order: among connections quiet since the same instant, the older is closed first.
        let serial: UInt64

        init(fd: Int32, now: ContinuousClock.Instant, serial: UInt64) {
            self.fd = fd
            lastProgress = now
            self.serial = serial
        }

        /// Made no progress for longer than `other`.
        func isQuieter(than other: Connection) -> Bool {
            (lastProgress, serial) < (other.lastProgress, other.serial)
        }
    }

    private let listenFD: Int32
    private let wakeFD: Int32
    private let limits: MetricsEndpoint.Configuration
    private let acceptErrors: Counter
    private let closed: [EndpointCloseReason: Counter]
    private let logger: Logger
    private let scrape: @Sendable () -> [UInt8]
    private var connections: [Int32: Connection] = [:]
    private var accepted: UInt64 = 0
    /// While set, the listening socket is left out of the poll: accept failed.
    private var acceptResumesAt: ContinuousClock.Instant?
    private var acceptFailures = AcceptFailureLog()

    init(listenFD: Int32, wakeFD: Int32, limits: MetricsEndpoint.Configuration, acceptErrors: Counter,
         closed: [EndpointCloseReason: Counter], logger: Logger, scrape: @escaping @Sendable () -> [UInt8]) {
        self.listenFD = listenFD
        self.wakeFD = wakeFD
        self.limits = limits
        self.acceptErrors = acceptErrors
        self.closed = closed
        self.logger = logger
        self.scrape = scrape
    }

    /// Serves until a byte arrives on the wake pipe, then closes every connection.
    func run() {
        let clock = ContinuousClock()
        var fds: [pollfd] = []
        while true {
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            // poll ignores a negative descriptor: that is how accepting pauses.
            fds.append(pollfd(fd: acceptResumesAt == nil ? listenFD : -1, events: Int16(POLLIN), revents: 0))
            for connection in connections.values {
                let events = connection.output.isEmpty ? POLLIN : POLLOUT
                fds.append(pollfd(fd: connection.fd, events: Int16(events), revents: 0))
            }
            EndpointSocket.poll(&fds, milliseconds: pollTimeout(now: clock.now))
            if fds[0].revents != 0 { break }
            let now = clock.now
            // Connections first: accepting may close one (over the limit) and reuse its descriptor.
            for entry in fds.dropFirst(2) where entry.revents != 0 {
                if let connection = connections[entry.fd] { serve(connection, now: now) }
            }
            if let resume = acceptResumesAt, now >= resume { acceptResumesAt = nil }
            if fds[1].revents != 0 { acceptPending(now: now) }
            closeIdle(now: now)
        }
        for connection in connections.values { EndpointSocket.close(connection.fd) }
        connections = [:]
    }

    /// Milliseconds until the next idle deadline or accept retry, rounded up; -1 for none.
    private func pollTimeout(now: ContinuousClock.Instant) -> Int32 {
        var next = acceptResumesAt
        if limits.idleTimeout > .zero, let quiet = connections.values.lazy.map(\.lastProgress).min() {
            next = min(next ?? quiet + limits.idleTimeout, quiet + limits.idleTimeout)
        }
        guard let next else { return -1 }
        let milliseconds = ((next - now) / .milliseconds(1)).rounded(.up)
        return Int32(min(max(milliseconds, 0), Double(Int32.max)))
    }

    private func acceptPending(now: ContinuousClock.Instant) {
        // At most a cap's worth per wake-up, so a burst cannot push out the
        // connections it brought before they have been read once.
        for _ in 0..<limits.maxConnections {
            switch EndpointSocket.accept(listenFD) {
            case .nothing:
                return
            case .failed(let error):
                acceptErrors.increment()
                acceptResumesAt = now + limits.acceptRetryInterval
                acceptFailures.failed(error: error, now: now, retry: limits.acceptRetryInterval, logger: logger)
                return
            case .connection(let fd):
                acceptFailures.recovered(logger: logger)
                if connections.count >= limits.maxConnections,
                   let quietest = connections.values.min(by: { $0.isQuieter(than: $1) }) {
                    close(quietest, .overLimit)
                }
                accepted += 1
                let connection = Connection(fd: fd, now: now, serial: accepted)
                connections[fd] = connection
                serve(connection, now: now)  // the request is often there already
            }
        }
    }

    private func closeIdle(now: ContinuousClock.Instant) {
        guard limits.idleTimeout > .zero else { return }
        for connection in connections.values where now - connection.lastProgress >= limits.idleTimeout {
            close(connection, .idleTimeout)
        }
    }

    /// Reads or writes what the connection is ready for, and answers every complete request.
    private func serve(_ connection: Connection, now: ContinuousClock.Instant) {
        if connection.output.isEmpty {
            // Never more than one head's worth: the limit's bytes end in `.tooLarge`.
            let room = limits.maxRequestBytes - connection.input.count
            switch EndpointSocket.receive(connection.fd, into: &connection.input, limit: room) {
            case .bytes: break
            case .wouldBlock: return
            case .closed: return close(connection, .peer)
            }
        }
        while true {
            while connection.sent < connection.output.count {
                switch EndpointSocket.send(connection.fd, connection.output, from: connection.sent) {
                case .bytes(let n):
                    connection.sent += n
                    connection.lastProgress = now
                case .wouldBlock: return
                case .closed: return close(connection, .peer)
                }
            }
            connection.output = []
            connection.sent = 0
            if let reason = connection.closeWhenSent { return close(connection, reason) }
            guard let reply = answer(connection) else { return }
            connection.output = reply
            connection.lastProgress = now
        }
    }

    /// The reply to the next complete request in the connection's input (which it consumes), if any.
    private func answer(_ connection: Connection) -> [UInt8]? {
        switch HTTPRequestHead.parse(connection.input[...], maxBytes: limits.maxRequestBytes) {
        case .incomplete:
            return nil
        case .tooLarge:
            connection.closeWhenSent = .tooLarge
            return HTTPResponse.error(status: 431, reason: "Request Header Fields Too Large", keepAlive: false)
        case .malformed:
            connection.closeWhenSent = .badRequest
            return HTTPResponse.error(status: 400, reason: "Bad Request", keepAlive: false)
        case .head(let head, let length):
            connection.input.removeFirst(length)
            if head.hasBody {
                connection.closeWhenSent = .badRequest
                return HTTPResponse.error(status: 400, reason: "Bad Request", keepAlive: false)
            }
            if !head.keepAlive { connection.closeWhenSent = .served }
            guard head.method == "GET" else {
                return HTTPResponse.error(status: 405, reason: "Method Not Allowed", extraHeaders: ["Allow: GET"],
                                          keepAlive: head.keepAlive)
            }
            guard head.path == "/metrics" else {
                return HTTPResponse.error(status: 404, reason: "Not Found", keepAlive: head.keepAlive)
            }
            return HTTPResponse.make(status: 200, reason: "OK", contentType: "text/plain; version=0.0.4; charset=utf-8",
                                     body: scrape(), keepAlive: head.keepAlive)
        }
    }

    private func close(_ connection: Connection, _ reason: EndpointCloseReason) {
        // Unread input would turn the close into a reset, which can destroy an error reply in flight.
        if reason == .tooLarge || reason == .badRequest { EndpointSocket.discardPending(connection.fd) }
        EndpointSocket.close(connection.fd)
        connections[connection.fd] = nil
        closed[reason]?.increment()
        if reason == .overLimit || reason == .idleTimeout {
            logger.debug("metrics endpoint closed a connection", metadata: ["reason": "\(reason.rawValue)"])
        }
    }
}

/// Logs accept failures without flooding: the first of a run at warning, then
/// at most one line per ``interval`` with the count, and one when accepting works again.
struct AcceptFailureLog {
    static let interval: Duration = .seconds(10)
    private var failuresInRun = 0
    private var unlogged = 0
    private var lastLogged: ContinuousClock.Instant?

    mutating func failed(error: Int32, now: ContinuousClock.Instant, retry: Duration, logger: Logger) {
        failuresInRun += 1
        unlogged += 1
        if let lastLogged, now - lastLogged < Self.interval { return }
        logger.warning("metrics endpoint cannot accept connections; retrying", metadata: [
            "error": "\(EndpointSocket.errorText(error))", "failures": "\(unlogged)", "retry_interval": "\(retry)",
        ])
        lastLogged = now
        unlogged = 0
    }

    mutating func recovered(logger: Logger) {
        guard failuresInRun > 0 else { return }
        logger.notice("metrics endpoint accepting again", metadata: ["failed_accepts": "\(failuresInRun)"])
        failuresInRun = 0
        unlogged = 0
        lastLogged = nil
    }
}
