import Foundation
import IProto
import IProtoTestSupport
import Testing

/// The C core's limits, checked through the counters they move, on an in-process server.
@Suite struct CoreLimitsTests {
    /// A server with one echo-ish function (0x01 returns its single string argument).
    private func makeServer(_ adjust: (inout Configuration) -> Void = { _ in }) throws -> Server {
        var configuration = Configuration(host: "127.0.0.1", port: 0)
        configuration.workers = 2
        configuration.rateLimit = 0  // these tests flood on purpose
        configuration.rateLimitPerIP = 0
        adjust(&configuration)
        var handlers = Handlers()
        handlers.register(0x01) { request in
            var arguments = try request.arguments(1)
            return .stringBytes(try arguments.stringBytes())
        }
        let server = try Server(configuration: configuration, handlers: handlers)
        try server.start()
        return server
    }

    @Test func oversizedBodyIsCountedAndClosed() throws {
        let server = try makeServer { $0.maxBodyBytes = 100 }
        defer { server.shutdown(); server.wait() }
        let connection = try TestConnection(port: server.port)
        try connection.send([0x01, 0, 0, 0, 101, 0, 0, 0, 7, 0, 0, 0])
        let response = try connection.readResponse()
        #expect(response.returnCode == .bodyTooLarge)
        #expect(response.requestID == 7)
        #expect(connection.nextOutcome() == .closed)
        #expect(eventually { server.statistics.closed(.tooLarge) == 1 })
        #expect(server.statistics.bodyTooLarge == 1)
    }

    @Test func idleAndReadTimeoutsAreCountedSeparately() throws {
        let server = try makeServer {
            $0.idleTimeout = .milliseconds(300)
            $0.readTimeout = .milliseconds(200)
        }
        defer { server.shutdown(); server.wait() }
        let idle = try TestConnection(port: server.port)
        let slow = try TestConnection(port: server.port)
        try slow.send([0x01, 0, 0])  // a header that never completes
        #expect(idle.nextOutcome() == .closed)
        #expect(slow.nextOutcome() == .closed)
        #expect(eventually { server.statistics.closed(.idleTimeout) == 1 && server.statistics.closed(.readTimeout) == 1 })
    }

    @Test func connectionsOverTheLimitAreClosedAndCounted() throws {
        let server = try makeServer { $0.maxConnections = 2 }
        defer { server.shutdown(); server.wait() }
        let first = try TestConnection(port: server.port)
        let second = try TestConnection(port: server.port)
        _ = try first.call(0x01, messagePack("a"))
        _ = try second.call(0x01, messagePack("b"))
        let third = try TestConnection(port: server.port, timeout: 5)
        #expect([.closed, .reset].contains(third.nextOutcome()))
        #expect(eventually { server.statistics.closed(.overLimit) == 1 })
        #expect(try first.call(0x01, messagePack("still here")).string == "still here")
        #expect(server.statistics.connectionsActive == 2)
    }

    @Test func unreadOutputPausesReading() throws {
        let server = try makeServer { $0.maxOutputBytes = 64 * 1024 }
        defer { server.shutdown(); server.wait() }
        let connection = try TestConnection(port: server.port, receiveBuffer: 16 * 1024, sendBuffer: 16 * 1024)
        let value = [UInt8](repeating: 0x61, count: 1000)
        let frame = Framing.request(funcID: 0x01, requestID: 1, body: messagePack(.stringBytes(value)))
        var stream: [UInt8] = []
        for _ in 0..<20_000 { stream += frame }  // ~20 MB of requests, ~20 MB of replies
        var sent = 0
        var stalledSince: Date?
        while sent < stream.count {
            let n = try connection.sendNonBlocking(stream[sent...])
            sent += n
            if n > 0 { stalledSince = nil } else if let since = stalledSince {
                if Date().timeIntervalSince(since) > 0.5 { break }
            } else { stalledSince = Date() }
            if n == 0 { usleep(1000) }
        }
        #expect(sent < stream.count, "the server kept reading although nobody read its replies")
        #expect(server.statistics.outputPaused >= 1)
        // Reading the replies lets the server resume; every complete request sent is answered in order.
        let complete = sent / frame.count
        for _ in 0..<complete {
            let response = try connection.readResponse()
            #expect(response.returnCode == .ok)
            #expect(response.body.count == 1003)
        }
    }

    /// Six clients pipelining and never reading, two workers, a 1 MiB budget:
    /// they stop being read once the total passes it, a small client and a
    /// pipelining client that reads are still answered beside them, and
    /// closing them gives everything back.
    @Test func memoryBudgetStopsTheClientsThatDoNotRead() throws {
        let budget = 1 << 20
        let server = try makeServer { $0.memoryBudgetBytes = budget }
        defer { server.shutdown(); server.wait() }
        let flood = try Flood(server: server, connections: 6)
        // A flooder stays paused: it never reads, so its output never drains, and the
        // paused ones together hold more than the budget. So the count reaches 6 and stays.
        #expect(try flood.run { $0.memoryBudgetPaused >= 6 }, "paused \(server.statistics.memoryBudgetPaused) times")
        let held = server.statistics
        #expect(held.memoryBudgetPaused == 6)
        #expect(held.outputPaused == 0, "the budget, not --max-output, stopped them")
        // Without the budget each would hold --max-output (1 MiB) of replies. With it, the total
        // passes the budget by at most what each flooder took in during the iteration before its
        // pass (a 64 KiB read, and its output buffer doubling once): 6 × 320 KiB.
        #expect(held.bufferedBytes > UInt64(budget))
        #expect(held.bufferedBytes <= UInt64(budget + 6 * 320 * 1024), "held \(held.bufferedBytes) bytes")

        let small = try TestConnection(port: server.port)
        for i in 0..<20 { #expect(try small.call(0x01, messagePack(.string("served \(i)"))).string == "served \(i)") }
        #expect(server.statistics.memoryBudgetPaused == 6, "the small client was not paused")

        // A client pipelining 8 MB of requests holds enough to be paused too (past what the
        // kernel's socket buffers take), but it reads: each time its output is all sent it
        // resumes, although the flooders still hold more than the budget. Its reads would
        // time out after 10 s otherwise.
        let reader = try TestConnection(port: server.port, source: "127.0.0.5", receiveBuffer: 16 * 1024)
        let request = Framing.request(funcID: 0x01, requestID: 1,
                                      body: messagePack(.stringBytes([UInt8](repeating: 0x63, count: 1000))))
        let count = 8000
        let requests = [UInt8]((0..<count).flatMap { _ in request })
        var offset = 0
        let deadline = Date().addingTimeInterval(30)
        // First without reading, until the server pauses it. The kernel's socket buffers may
        // take all 8 MB before the server has read its way to the pause: then wait for it.
        while server.statistics.memoryBudgetPaused == 6 && Date() < deadline {
            if offset < requests.count {
                offset += try reader.sendNonBlocking(requests[offset...])
            } else {
                usleep(1000)
            }
        }
        #expect(server.statistics.memoryBudgetPaused == 7, "the reader was not paused: nothing was tested")
        var answered = 0
        while answered < count {
            guard Date() < deadline else {
                Issue.record("the reader got \(answered) of \(count) replies in 30 s")
                return
            }
            // Read every reply due, then send until the socket takes no more.
            while answered < offset / request.count {
                guard try reader.readResponse().body.count == 1003 else {
                    Issue.record("reply \(answered) was not the echo")
                    return
                }
                answered += 1
            }
            while offset < requests.count {
                let n = try reader.sendNonBlocking(requests[offset...])
                if n == 0 { break }
                offset += n
            }
        }

        flood.close()
        reader.shutdownWrite()
        small.shutdownWrite()
        #expect(eventually { server.statistics.bufferedBytes == 0 }, "still held: \(server.statistics.bufferedBytes)")
    }

    /// Paused connections resume once the total falls under 90 % of the budget, here
    /// because the flooders that hold most of it went; every request is then answered.
    @Test func memoryBudgetResumesUnderNinetyPercent() throws {
        let server = try makeServer { $0.memoryBudgetBytes = 1 << 20 }
        defer { server.shutdown(); server.wait() }
        let flood = try Flood(server: server, connections: 5)
        #expect(try flood.run { $0.memoryBudgetPaused >= 5 })
        // One more, paused as soon as it holds anything: so it holds far less than 90 % alone.
        try flood.open()
        #expect(try flood.run { $0.memoryBudgetPaused >= 6 })
        flood.close(first: 5)
        // The last flooder is read again (until it stops once more), though it reads nothing.
        #expect(try flood.run { $0.memoryBudgetPaused > 6 || $0.outputPaused > 0 }, "the last flooder was not resumed")
        for _ in 0..<flood.sent[0] / flood.frame.count {
            let response = try flood.connections[0].readResponse()
            guard response.returnCode == .ok, response.body.count == 102 else {
                Issue.record("reply \(response.header)")
                return
            }
        }
    }

    /// 1000 requests in one write: run 128 per loop turn, all answered in order.
    @Test func pipelinedRequestsYieldTheWorkerEvery128() throws {
        let server = try makeServer { $0.workers = 1 }
        defer { server.shutdown(); server.wait() }
        let connection = try TestConnection(port: server.port)
        try connection.send((0..<1000).flatMap { id in
            Framing.request(funcID: 0x01, requestID: UInt32(id), body: messagePack(.string("r\(id)")))
        })
        for id in 0..<1000 {
            let response = try connection.readResponse()
            guard response.requestID == UInt32(id), response.string == "r\(id)" else {
                Issue.record("reply \(id) was \(response.header)")
                return
            }
        }
        #expect(server.statistics.turnsYielded >= 1000 / 128 - 1)
    }

    @Test func shutdownFlushesAndClosesEveryConnection() throws {
        let server = try makeServer()
        let connections = try (0..<10).map { _ in try TestConnection(port: server.port) }
        for connection in connections { _ = try connection.call(0x01, messagePack("x")) }
        server.shutdown()
        server.wait()
        for connection in connections { #expect(connection.nextOutcome() == .closed) }
        #expect(server.statistics.closed(.shutdown) == 10)
        #expect(server.statistics.connectionsActive == 0)
    }
}

/// Clients that pipeline echo requests (a 100-byte value each) and never read
/// the replies, through 16 KiB socket buffers, from 127.0.0.2 to 127.0.0.4.
private final class Flood {
    let server: Server
    private(set) var connections: [TestConnection]
    private(set) var sent: [Int]
    let frame = Framing.request(funcID: 0x01, requestID: 1,
                                body: messagePack(.stringBytes([UInt8](repeating: 0x62, count: 100))))
    private let chunk: [UInt8]

    init(server: Server, connections count: Int) throws {
        self.server = server
        connections = []
        sent = []
        chunk = (0..<600).flatMap { [frame] _ in frame }
        for _ in 0..<count { try open() }
    }

    /// Adds a connection.
    func open() throws {
        connections.append(try TestConnection(port: server.port, source: "127.0.0.\(2 + connections.count % 3)",
                                              receiveBuffer: 16 * 1024, sendBuffer: 16 * 1024))
        sent.append(0)
    }

    /// Sends on every connection as far as the server takes it until `done` holds; false after
    /// 20 s (before the idle timeout closes a paused flooder).
    func run(until done: (ServerStatistics) -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(20)
        while !done(server.statistics) {
            guard Date() < deadline else { return false }
            var moved = 0
            for (i, connection) in connections.enumerated() {
                let n = try connection.sendNonBlocking(chunk[(sent[i] % frame.count)...])
                sent[i] += n
                moved += n
            }
            if moved == 0 { usleep(1000) }
        }
        return true
    }

    /// Closes the first `count` connections (all by default). With replies unread, a close is
    /// a reset, which the server sees although it is not reading them.
    func close(first count: Int? = nil) {
        let count = count ?? connections.count
        for connection in connections[..<count] { connection.reset() }
        connections.removeFirst(count)
        sent.removeFirst(count)
    }
}
