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
