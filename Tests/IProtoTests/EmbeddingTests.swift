import IProto
import IProtoTestSupport
import Synchronization
import Testing

@Suite struct EmbeddingTests {
    @Test func readmeExampleServesItsOwnFunction() async throws {
        // The README's embedding example, on port 0.
        var handlers = Handlers()
        handlers.register(0x0003_0001, name: "HELLO") { request in
            var arguments = try request.arguments(1)
            let name = try arguments.string(maxBytes: 64)
            return .string("hello, \(name)")
        }
        let server = try Server(configuration: .init(host: "127.0.0.1", port: 0), handlers: handlers)
        // Started here, so that serving does not wait until the run task gets a thread of the
        // cooperative pool, which the other suites' blocking tests may hold for many seconds.
        try server.start()
        let running = Task { try await server.run() }

        // Blocking socket calls run off the cooperative pool, which the server's task needs.
        try await onBlockingThread {
            let connection = try TestConnection(port: server.port, timeout: 30)
            let hello = try connection.call(0x0003_0001, messagePack("world"))
            #expect(hello.returnCode == .ok)
            #expect(hello.string == "hello, world")
            let tooLong = try connection.call(0x0003_0001, messagePack(.string(String(repeating: "a", count: 65))))
            #expect(tooLong.returnCode == .tooLong)
            let unknown = try connection.call(0x0003_0002)
            #expect(unknown.returnCode == .unknownFunction)
        }

        running.cancel()
        try await running.value
        #expect(server.statistics.requests == 3)
    }

    /// Binaries of 64 KiB and more reach the core by reference, in pieces between the
    /// rest of the encoding: the reply must be the same bytes as one encoded whole,
    /// with several of them, at the start, the end and side by side, behind a barrier or not.
    @Test(arguments: [false, true]) func largeBinariesComeBackWhole(barrier: Bool) async throws {
        func blob(_ count: Int, _ seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) &+ seed } }
        let replies: [UInt32: MessagePackValue] = [
            0x01: .binary(blob(1 << 20, 1)),
            0x02: .array([.string("head"), .binary(blob(64 << 10, 2)), .uint(7), .binary(blob(200_000, 3)), .binary(blob(65_535, 4))]),
            0x03: .array([.binary(blob(70_000, 5)), .binary(blob(80_000, 6)), .nil]),
            0x04: .map([MessagePackPair(.string("k"), .binary(blob(100_000, 7)))]),
        ]
        var handlers = Handlers()
        for (funcID, reply) in replies { handlers.register(funcID) { _ in reply } }
        if barrier { handlers.beforeReplies { _ in } }
        let server = try Server(configuration: .init(host: "127.0.0.1", port: 0), handlers: handlers)
        try server.start()
        let running = Task { try await server.run() }
        try await onBlockingThread {
            let connection = try TestConnection(port: server.port, timeout: 30)
            for (funcID, reply) in replies.sorted(by: { $0.key < $1.key }) {
                var expected = MessagePackWriter()
                expected.write(reply)
                let got = try connection.call(funcID)
                let same = got.returnCode == .ok && got.body == expected.bytes
                #expect(same, "function \(funcID): \(got.body.count) bytes, expected \(expected.bytes.count)")
            }
        }
        running.cancel()
        try await running.value
    }

    /// A handler and the barrier after it run on the same worker, which they can name.
    @Test func handlersAndBarriersKnowTheirWorker() async throws {
        #expect(Handlers.currentWorker == nil)
        let seen = Mutex<[String]>([])
        var handlers = Handlers()
        handlers.register(0x0003_0001) { _ in .int(Int64(Handlers.currentWorker ?? -1)) }
        handlers.beforeReplies { worker in seen.withLock { $0.append("\(worker)=\(Handlers.currentWorker ?? -1)") } }
        var configuration = Configuration(host: "127.0.0.1", port: 0)
        configuration.workers = 2
        let server = try Server(configuration: configuration, handlers: handlers)
        try server.start()
        let running = Task { try await server.run() }
        try await onBlockingThread {
            for _ in 0..<4 {
                let connection = try TestConnection(port: server.port, timeout: 30)
                let reply = try connection.call(0x0003_0001)
                #expect(reply.returnCode == .ok)
                #expect(reply.body == [0x00] || reply.body == [0x01])
            }
        }
        running.cancel()
        try await running.value
        let barriers = seen.withLock { $0 }
        #expect(!barriers.isEmpty)
        #expect(barriers.allSatisfy { ["0=0", "1=1"].contains($0) })
    }

    @Test func bindFailureIsAClearError() throws {
        let first = try Server(configuration: .init(host: "127.0.0.1", port: 0), handlers: Handlers())
        #expect { try Server(configuration: .init(host: "127.0.0.1", port: UInt16(first.port)), handlers: Handlers()) }
            throws: { "\($0)".contains("cannot listen on 127.0.0.1:\(first.port)") }
    }

    @Test func invalidConfigurationIsRejectedBeforeBinding() {
        var configuration = Configuration(port: 0)
        configuration.workers = 0
        #expect { try Server(configuration: configuration, handlers: Handlers()) }
            throws: { "\($0)".contains("workers must be between 1 and 1024") }
    }
}
