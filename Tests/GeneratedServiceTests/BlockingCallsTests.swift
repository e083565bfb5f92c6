import Foundation
import IProto
import IProtoClient
import Testing

/// `BlockingCalls` against real servers on loopback: results matched by ticket,
/// replies decoded by the generated prepared calls, and the three ways a peer
/// goes wrong (refuses, answers too much, never answers) failing the calls
/// without stalling the thread beyond their timeouts.
@Suite struct BlockingCallsTests {
    /// A Toolbox server on port 0, whose TOOLBOX_RESET sleeps for `resetDelay`
    /// (a server that is stuck); `body` gets its address.
    private func withServer(resetDelay: Double = 0, _ body: (String) throws -> Void) throws {
        var handlers = Handlers()
        handlers.register(ToolboxFunction.echo.rawValue) { request in
            var arguments = try Arguments(values: request.body, count: 1)
            return .string(try arguments.string())
        }
        handlers.register(ToolboxFunction.mirror.rawValue) { request in
            var arguments = try Arguments(values: request.body, count: 1)
            return try arguments.value(maxBytes: 1024)
        }
        handlers.register(ToolboxFunction.fail.rawValue) { _ in throw IProtoError(ReturnCode(rawValue: 0x102), "failed with 2") }
        handlers.register(ToolboxFunction.reset.rawValue) { _ in
            Thread.sleep(forTimeInterval: resetDelay)
            return .nil
        }
        let server = try Server(configuration: .init(host: "127.0.0.1", port: 0), handlers: handlers)
        try server.start()
        defer {
            server.shutdown()
            server.wait()
        }
        try body("127.0.0.1:\(server.port)")
    }

    private func configuration(timeout: Duration = .seconds(2), maxResponseBody: Int = 16 << 20) -> ClientConfiguration {
        var configuration = ClientConfiguration()
        configuration.callTimeout = timeout
        configuration.reconnectBackoff = .milliseconds(200)
        configuration.maxResponseBody = maxResponseBody
        return configuration
    }

    /// Every result not yet returned, by ticket, waiting at most 5 s in all (a broken
    /// implementation fails the test instead of hanging it).
    private func drain(_ calls: BlockingCalls) -> [BlockingCalls.Ticket: Result<Response, ClientError>] {
        var results: [BlockingCalls.Ticket: Result<Response, ClientError>] = [:]
        let deadline = ContinuousClock.now + .seconds(5)
        while let (ticket, result) = calls.next(until: deadline) { results[ticket] = result }
        return results
    }

    @Test func resultsFromSeveralServersMatchTheirTickets() throws {
        try withServer { (first: String) throws in
            try withServer { (second: String) throws in
                let calls = BlockingCalls(configuration: configuration())
                let a = calls.start(ToolboxCalls.echo(text: "to a"), to: first)
                let b = calls.start(ToolboxCalls.echo(text: "to b"), to: second)
                let failing = calls.start(ToolboxCalls.fail(code: 2), to: second)
                #expect(calls.waiting == 3)
                let results = drain(calls)
                #expect(results.count == 3 && calls.waiting == 0)
                #expect(try ToolboxCalls.echo(text: "").reply(results[a]!.get()) == "to a")
                #expect(try ToolboxCalls.echo(text: "").reply(results[b]!.get()) == "to b")
                #expect(throws: ClientError.server(IProtoError(ReturnCode(rawValue: 0x102), "failed with 2"))) {
                    try ToolboxCalls.fail(code: 2).reply(results[failing]!.get())
                }
                // The connections stay for the next calls.
                let again = calls.start(ToolboxCalls.echo(text: "again"), to: first)
                #expect(try ToolboxCalls.echo(text: "").reply(drain(calls)[again]!.get()) == "again")
            }
        }
    }

    /// A server that closed an idle connection (it restarted) costs the next call
    /// nothing: the connection is made again before the call is sent.
    @Test func aConnectionClosedWhileIdleIsMadeAgain() throws {
        var port: UInt16 = 0
        let calls = BlockingCalls(configuration: configuration())
        try withServer { (address: String) throws in
            port = UInt16(address.split(separator: ":").last!)!
            let first = calls.start(ToolboxCalls.echo(text: "before"), to: address)
            #expect(try drain(calls)[first]!.get().returnCode == .ok)
        }
        // The same port again, as a restarted server would listen.
        var handlers = Handlers()
        handlers.register(ToolboxFunction.echo.rawValue) { request in
            var arguments = try Arguments(values: request.body, count: 1)
            return .string(try arguments.string())
        }
        let server = try Server(configuration: .init(host: "127.0.0.1", port: port), handlers: handlers)
        try server.start()
        defer {
            server.shutdown()
            server.wait()
        }
        let again = calls.start(ToolboxCalls.echo(text: "after"), to: "127.0.0.1:\(port)")
        #expect(try ToolboxCalls.echo(text: "").reply(drain(calls)[again]!.get()) == "after")
    }

    @Test func aRefusedConnectionFailsTheCallAtOnceAndBacksOff() throws {
        let calls = BlockingCalls(configuration: configuration())
        let started = ContinuousClock.now
        let ticket = calls.start(ToolboxCalls.reset(), to: "127.0.0.1:1")  // nothing listens on port 1
        let result = drain(calls)[ticket]
        guard case .failure(.connectionFailed)? = result else { Issue.record("got \(String(describing: result))"); return }
        #expect(ContinuousClock.now - started < .seconds(1))
        // Within the backoff, the next call fails without trying.
        let next = calls.start(ToolboxCalls.reset(), to: "127.0.0.1:1")
        #expect(drain(calls)[next] == .failure(.connectionFailed("backing off after a failed attempt")))
    }

    @Test func aReplyOverTheLimitFailsItsConnection() throws {
        try withServer { (address: String) throws in
            let calls = BlockingCalls(configuration: configuration(maxResponseBody: 32))
            let small = calls.start(ToolboxCalls.mirror(message: .string("short")), to: address)
            #expect(try drain(calls)[small]!.get().returnCode == .ok)
            let large = calls.start(ToolboxCalls.mirror(message: .string(String(repeating: "x", count: 40))), to: address)
            let result = drain(calls)[large]
            guard case .failure(.protocolViolation)? = result else { Issue.record("got \(String(describing: result))"); return }
        }
    }

    /// A server that does not answer: its call times out when due (not before, not much
    /// later), the connection is dropped, and the next call backs off instead of piling up.
    @Test func aStuckServerTimesOutAndIsBackedOff() throws {
        try withServer(resetDelay: 1.5) { (address: String) throws in
            let calls = BlockingCalls(configuration: configuration(timeout: .milliseconds(300)))
            let warm = calls.start(ToolboxCalls.echo(text: "up"), to: address)
            #expect(try drain(calls)[warm]!.get().returnCode == .ok)
            let started = ContinuousClock.now
            let stuck = calls.start(ToolboxCalls.reset(), to: address)
            #expect(drain(calls)[stuck] == .failure(.timedOut))
            let waited = ContinuousClock.now - started
            #expect(waited >= .milliseconds(300) && waited < .milliseconds(1000), "waited \(waited)")
            let next = calls.start(ToolboxCalls.echo(text: "up"), to: address)
            #expect(drain(calls)[next] == .failure(.connectionFailed("backing off after a failed attempt")))
        }
    }

    /// A call past its own deadline fails alone: the connection, which has not been
    /// silent for a whole call timeout, stays, and the next call on it gets its reply
    /// (were the connection dropped, the next call would fail, backing off).
    @Test func aLateCallFailsAloneAndItsConnectionStays() throws {
        try withServer(resetDelay: 0.3) { (address: String) throws in
            let calls = BlockingCalls(configuration: configuration(timeout: .seconds(2)))
            let warm = calls.start(ToolboxCalls.echo(text: "up"), to: address)
            #expect(try drain(calls)[warm]!.get().returnCode == .ok)
            let started = ContinuousClock.now
            let late = calls.start(ToolboxCalls.reset(), to: address, timeout: .milliseconds(100))
            #expect(drain(calls)[late] == .failure(.timedOut))
            #expect(ContinuousClock.now - started < .milliseconds(250))
            let behind = calls.start(ToolboxCalls.echo(text: "behind"), to: address)
            #expect(try ToolboxCalls.echo(text: "").reply(drain(calls)[behind]!.get()) == "behind")
            #expect(ContinuousClock.now - started >= .milliseconds(300))  // it waited behind the late one
        }
    }

    /// Abandoned calls are no longer waited for, and still count as unanswered: a
    /// connection silent for a call timeout since the abandoned call fails, with the
    /// call made later on it, when the abandoned one is due, not the later one.
    @Test func abandonedCallsAreNotWaitedForButStillCount() throws {
        try withServer(resetDelay: 3) { (address: String) throws in
            let calls = BlockingCalls(configuration: configuration(timeout: .seconds(1)))
            let warm = calls.start(ToolboxCalls.echo(text: "up"), to: address)
            #expect(try drain(calls)[warm]!.get().returnCode == .ok)
            let started = ContinuousClock.now
            _ = calls.start(ToolboxCalls.reset(), to: address)
            calls.abandon()
            #expect(calls.waiting == 0)
            #expect(calls.next() == nil)
            #expect(ContinuousClock.now - started < .milliseconds(100))
            Thread.sleep(forTimeInterval: 0.5)
            let later = calls.start(ToolboxCalls.echo(text: "queued"), to: address)
            #expect(drain(calls)[later] == .failure(.timedOut))
            let waited = ContinuousClock.now - started
            #expect(waited >= .seconds(1) && waited < .milliseconds(1400), "waited \(waited)")
        }
    }

    /// Behind a stuck call, a request is not sent once the unanswered bytes would pass
    /// the bound; on an idle connection, a request over it still goes.
    @Test func aBacklogOverTheBoundIsNotSent() throws {
        try withServer(resetDelay: 1) { (address: String) throws in
            let calls = BlockingCalls(configuration: configuration(), maxUnansweredBytes: 20)
            let large = calls.start(ToolboxCalls.echo(text: "eightchr"), to: address)  // 12 + 9 bytes
            #expect(try drain(calls)[large]!.get().returnCode == .ok)
            let stuck = calls.start(ToolboxCalls.reset(), to: address)  // 12 bytes
            let refused = calls.start(ToolboxCalls.echo(text: "x"), to: address)  // 12 + 2 more
            let results = drain(calls)
            #expect(try results[stuck]!.get().returnCode == .ok)
            #expect(results[refused] == .failure(.overloaded("12 bytes of requests unanswered by \(address)")))
        }
    }
}
