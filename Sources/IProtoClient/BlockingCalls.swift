import IProto

/// Calls from one thread to several servers, sent together and waited for on
/// that thread: how a server worker that must block anyway (a reply barrier
/// replicating a batch) talks to its peers without Swift concurrency, so that
/// a reply wakes the worker itself rather than a reader thread, a task on the
/// cooperative pool and then the worker.
///
/// ```swift
/// let calls = BlockingCalls()
/// let a = calls.start(KVPeerCalls.replicaWrite(...), to: "10.0.0.2:4001")
/// let b = calls.start(KVPeerCalls.replicaWrite(...), to: "10.0.0.3:4001")
/// // … the thread's own work …
/// while let (ticket, response) = calls.next() { … }
/// ```
///
/// One pipelined connection per server, made on first use without blocking (a
/// server that does not answer its SYN costs nothing until its calls time
/// out), and made again after a failure once a backoff that doubles per
/// failure has passed. A call past its timeout fails alone; the connection
/// fails, with every call on it, only when it has calls in flight and has
/// answered none of them for a whole call timeout: the server or the path to
/// it is stuck, where one that is merely slow keeps its connection. A caller
/// that has what it needs (a quorum) may ``abandon()`` the rest: their
/// replies are dropped when they come. So that a slow server's backlog stays
/// bounded, a call is not sent while more than `maxUnansweredBytes` of
/// requests wait for replies on its connection (``ClientError/overloaded(_:)``).
///
/// Not for sharing between threads: one instance per thread.
public final class BlockingCalls {
    /// A started call, to match with its result.
    public struct Ticket: Hashable, Sendable {
        fileprivate let id: Int
    }

    private struct Call {
        var ticket: Ticket
        var deadline: ContinuousClock.Instant
        var bytes: Int
        /// Its result was returned or is no longer wanted; its reply is dropped.
        var settled = false
    }

    private final class Link {
        let host: String
        let port: Int
        var connection: PipelinedConnection?
        var calls: [UInt32: Call] = [:]
        var unansweredBytes = 0
        /// When it last answered a call, or got its first call in flight.
        var lastProgress = ContinuousClock.now
        var nextRequestID: UInt32 = 1
        var backoff: Duration = .zero
        var retryAt: ContinuousClock.Instant?
        init(_ address: String) { (host, port) = IProtoClient.split(address) }
    }

    public let configuration: ClientConfiguration
    public let maxUnansweredBytes: Int
    private var links: [Link] = []
    private var linkByAddress: [String: Int] = [:]
    private var nextTicket = 0
    /// Results not yet returned by ``next(until:)``.
    private var ready: [(Ticket, Result<Response, ClientError>)] = []
    private let poller: Poller?

    public init(configuration: ClientConfiguration = ClientConfiguration(), maxUnansweredBytes: Int = 64 << 20) {
        self.configuration = configuration
        self.maxUnansweredBytes = maxUnansweredBytes
        poller = try? Poller()
    }

    /// Calls whose results ``next(until:)`` has yet to return.
    public var waiting: Int { links.reduce(0) { $0 + $1.calls.values.filter { !$0.settled }.count } + ready.count }

    /// Sends `call` to `address` ("host:port") without waiting; its result comes from ``next(until:)``.
    public func start<Reply>(_ call: PreparedCall<Reply>, to address: String, timeout: Duration? = nil) -> Ticket {
        nextTicket += 1
        let ticket = Ticket(id: nextTicket)
        let link = self.link(address)
        // What came while no call waited: stale replies, or the server closing the
        // connection (a restart), which is then made again rather than failing this call.
        // (Not while a connect is under way: only its writability says it has ended.)
        if let connection = link.connection, !connection.isConnecting { service(link) }
        if let failure = connect(link) {
            ready.append((ticket, .failure(failure)))
            return ticket
        }
        let frame = Framing.request(funcID: call.funcID, requestID: link.nextRequestID, body: call.body)
        guard link.calls.isEmpty || link.unansweredBytes + frame.count <= maxUnansweredBytes else {
            ready.append((ticket, .failure(.overloaded("\(link.unansweredBytes) bytes of requests unanswered by \(address)"))))
            return ticket
        }
        if link.calls.isEmpty { link.lastProgress = .now }
        link.calls[link.nextRequestID] = Call(
            ticket: ticket, deadline: .now + (timeout ?? configuration.callTimeout), bytes: frame.count)
        link.unansweredBytes += frame.count
        link.nextRequestID &+= 1
        do {
            try link.connection!.send(frame)
        } catch {
            fail(link, with: error)
        }
        return ticket
    }

    /// The next result of a started call, waiting for it until `deadline` (by default
    /// until the calls time out); nil when no call is waited for or none came in time.
    /// A reply with a non-zero return code is a success here: decode it with its
    /// call's ``PreparedCall/reply(_:)``.
    public func next(until deadline: ContinuousClock.Instant? = nil) -> (Ticket, Result<Response, ClientError>)? {
        while true {
            expireOverdueCalls()
            if !ready.isEmpty { return ready.removeFirst() }
            guard waiting > 0 else { return nil }
            let now = ContinuousClock.now
            if let deadline, deadline <= now { return nil }
            // Settled calls are serviced too: their replies must be read off the
            // socket, and a stuck connection must be noticed.
            let busy = links.indices.filter { !links[$0].calls.isEmpty }
            var soonest = busy.map { links[$0].lastProgress + configuration.callTimeout }.min()!
            for index in busy {
                for call in links[index].calls.values where !call.settled { soonest = min(soonest, call.deadline) }
            }
            guard let poller else {
                for index in busy { fail(links[index], with: .connectionFailed("epoll is unavailable")) }
                continue
            }
            for index in busy {
                let connection = links[index].connection!
                poller.watch(connection, token: index, writable: connection.isConnecting || connection.hasPendingOutput)
            }
            // Rounded up, so that a deadline less than 1 ms away is not polled for 0 ms in a loop.
            let until = min(deadline ?? soonest, soonest)
            let milliseconds = Int32(min((until - now) / .milliseconds(1), 60_000).rounded(.up))
            poller.wait(milliseconds: max(milliseconds, 0)) { index in service(links[index]) }
        }
    }

    /// Stops waiting for every call in flight and drops results not yet returned.
    public func abandon() {
        ready = []
        for link in links {
            for id in link.calls.keys { link.calls[id]!.settled = true }
        }
    }

    /// Closes every connection; calls in flight are dropped.
    public func close() {
        for link in links {
            link.connection = nil
            link.calls = [:]
            link.unansweredBytes = 0
        }
        ready = []
    }

    // MARK: Links

    private func link(_ address: String) -> Link {
        if let index = linkByAddress[address] { return links[index] }
        linkByAddress[address] = links.count
        links.append(Link(address))
        return links[links.count - 1]
    }

    /// Makes sure `link` has a connection (made or under way); why not, when it cannot.
    private func connect(_ link: Link) -> ClientError? {
        if link.connection != nil { return nil }
        if let retryAt = link.retryAt, retryAt > .now { return .connectionFailed("backing off after a failed attempt") }
        do {
            link.connection = try PipelinedConnection(startingToConnect: link.host, port: link.port)
            return nil
        } catch {
            backOff(link)
            return error
        }
    }

    /// Reads and writes what `link`'s socket is ready for; results go to `ready`.
    private func service(_ link: Link) {
        guard let connection = link.connection else { return }
        do {
            if connection.isConnecting {
                try connection.finishConnecting()
                link.backoff = .zero
                link.retryAt = nil
            }
            try connection.flush()
            try connection.receive(maxBody: configuration.maxResponseBody)
            while let (id, response) = try connection.nextResponse(maxBody: configuration.maxResponseBody) {
                // A reply to no call in flight is dropped.
                guard let call = link.calls.removeValue(forKey: id) else { continue }
                link.unansweredBytes -= call.bytes
                link.lastProgress = .now
                if !call.settled { ready.append((call.ticket, .success(response))) }
            }
        } catch {
            fail(link, with: error)
        }
    }

    /// Calls past their deadline fail alone; a connection silent for a whole call
    /// timeout with calls in flight fails with all of them.
    private func expireOverdueCalls() {
        let now = ContinuousClock.now
        for link in links where !link.calls.isEmpty {
            if now - link.lastProgress >= configuration.callTimeout {
                fail(link, with: .timedOut)
                continue
            }
            for (id, call) in link.calls where !call.settled && call.deadline <= now {
                link.calls[id]!.settled = true
                ready.append((call.ticket, .failure(.timedOut)))
            }
        }
    }

    /// Drops `link`'s connection and fails its calls with `error`. A failed connect or a
    /// stuck connection backs off: the next calls fail at once for a while.
    private func fail(_ link: Link, with error: ClientError) {
        let wasConnecting = link.connection?.isConnecting ?? false
        for call in link.calls.values.sorted(by: { $0.ticket.id < $1.ticket.id }) where !call.settled {
            ready.append((call.ticket, .failure(error)))
        }
        link.calls = [:]
        link.unansweredBytes = 0
        link.connection = nil
        if wasConnecting || error == .timedOut { backOff(link) }
    }

    private func backOff(_ link: Link) {
        link.backoff = link.backoff == .zero
            ? configuration.reconnectBackoff : min(link.backoff * 2, configuration.maxReconnectBackoff)
        link.retryAt = .now + link.backoff
    }
}
