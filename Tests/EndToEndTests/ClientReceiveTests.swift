import Foundation
import IProto
import Synchronization
import IProtoClient
import IProtoTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A peer that plays an iproto server by script: it takes one connection, reads the
/// requests, and writes exactly the bytes a test gives it, in exactly those pieces,
/// so the client's reader meets replies cut at every awkward place.
private final class ScriptedPeer: Sendable {
    let listener: LoopbackListener
    var port: Int { listener.port }

    init() throws { listener = try LoopbackListener(backlog: 4) }

    /// Accepts one connection and runs `script` on it on a thread of its own, then closes it.
    func serve(_ script: @escaping @Sendable (Connection) -> Void) {
        let listener = listener
        Thread.detachNewThread {
            let fd = accept(listener.fd, nil, nil)
            guard fd >= 0 else { return }
            script(Connection(fd: fd))
            close(fd)
        }
    }

    struct Connection: Sendable {
        let fd: Int32

        /// Reads `count` requests; returns each one's request_id by its func_id.
        func requests(_ count: Int) -> [UInt32: UInt32] {
            var ids: [UInt32: UInt32] = [:]
            for _ in 0..<count {
                guard let request = request() else { return ids }
                ids[request.funcID] = request.requestID
            }
            return ids
        }

        /// The next request, whole; nil when the connection ends first.
        func request() -> (funcID: UInt32, requestID: UInt32, body: [UInt8])? {
            let header = read(12)
            guard header.count == 12 else { return nil }
            let word = { (at: Int) in (0..<4).reduce(UInt32(0)) { $0 | UInt32(header[at + $1]) << (8 * $1) } }
            let body = read(Int(word(4)))
            guard body.count == Int(word(4)) else { return nil }
            return (word(0), word(8), body)
        }

        func read(_ count: Int) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
                if n <= 0 { break }
                done += n
            }
            return Array(bytes.prefix(done))
        }

        /// Writes `bytes` in one send, then waits `pause` so the client reads it on its own.
        func write(_ bytes: ArraySlice<UInt8>, pause: Double = 0.03) {
            var done = 0
            while done < bytes.count {
                let n = Array(bytes).withUnsafeBytes { send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                done += n
            }
            Thread.sleep(forTimeInterval: pause)
        }
    }

    /// A reply frame: func_id, body_length, request_id, return code 0, then the body.
    static func reply(_ funcID: UInt32, _ requestID: UInt32, _ body: [UInt8]) -> [UInt8] {
        [funcID, UInt32(body.count), requestID, 0].flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } } + body
    }
}

/// The client's reader with replies cut at every place a large body can be cut: it
/// receives a body of `ClientConnection.directBodyBytes` (64 KiB) or more straight into
/// its own array, and must neither read past it nor lose what follows.
@Suite struct ClientReceiveTests {
    static func body(_ count: Int, _ seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) ^ seed } }

    /// Whether a call returned exactly `expected` (a Bool, so a failure does not print megabytes).
    static func same(_ result: Result<[UInt8], ClientError>?, _ expected: [UInt8]) -> Bool {
        guard case .success(let bytes)? = result else { return false }
        return bytes == expected
    }

    /// Calls func_ids 1, 2 and 3 at once on `peer`; expects each reply's body to be `expected[func_id]`.
    private static func expectReplies(_ expected: [UInt32: [UInt8]], from peer: ScriptedPeer) async {
        let replies = await threeCalls(IProtoClient(host: "127.0.0.1", port: peer.port))
        for (funcID, body) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(same(replies[funcID], body), "reply \(funcID)")
        }
    }

    /// Calls func_ids 1, 2 and 3 at once; returns their replies' bodies or errors.
    static func threeCalls(_ client: IProtoClient) async -> [UInt32: Result<[UInt8], ClientError>] {
        await withTaskGroup(of: (UInt32, Result<[UInt8], ClientError>).self) { group in
            for funcID: UInt32 in 1...3 {
                group.addTask {
                    do throws(ClientError) {
                        return (funcID, .success(try await client.call(funcID, body: [0xc0]).body))
                    } catch {
                        return (funcID, .failure(error))
                    }
                }
            }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
    }

    @Test(arguments: [64 << 10, 300_000, 1 << 20])
    func aLargeReplyCutAnywhereAmongSmallOnesArrivesWholeAndSoDoTheOthers(size: Int) async throws {
        let peer = try ScriptedPeer()
        let small = Self.body(100, 1), large = Self.body(size, 2), last = Self.body(7, 3)
        peer.serve { connection in
            let ids = connection.requests(3)
            // A whole small reply, the large one's header and 10 bytes of its body in one piece;
            // the rest in three, the third of them with the next small reply right behind it.
            let stream = ScriptedPeer.reply(1, ids[1]!, small) + ScriptedPeer.reply(2, ids[2]!, large) + ScriptedPeer.reply(3, ids[3]!, last)
            let cuts = [116 + 16 + 10, 116 + 16 + size / 3, 116 + 16 + size - 1, stream.count]
            var from = 0
            for cut in cuts {
                connection.write(stream[from..<cut])
                from = cut
            }
        }
        await Self.expectReplies([1: small, 2: large, 3: last], from: peer)
    }

    @Test func aLargeReplyThatArrivesInOnePieceWithTheNextIsSplitRight() async throws {
        let peer = try ScriptedPeer()
        let large = Self.body(200_000, 4), small = Self.body(3, 5), other = Self.body(70_000, 6)
        peer.serve { connection in
            let ids = connection.requests(3)
            connection.write(ArraySlice(ScriptedPeer.reply(2, ids[2]!, large) + ScriptedPeer.reply(1, ids[1]!, small)
                + ScriptedPeer.reply(3, ids[3]!, other).prefix(16 + 5)))
            connection.write(ArraySlice(ScriptedPeer.reply(3, ids[3]!, other).dropFirst(16 + 5)))
        }
        await Self.expectReplies([1: small, 2: large, 3: other], from: peer)
    }

    @Test func aLargeBodyCutOffFailsTheCallsInFlightAndTheNextCallReconnects() async throws {
        let peer = try ScriptedPeer()
        peer.serve { connection in
            let ids = connection.requests(3)
            // Half of a large body, then the connection closes.
            connection.write(ArraySlice(ScriptedPeer.reply(2, ids[2]!, Self.body(500_000, 7)).prefix(250_000)))
        }
        let client = IProtoClient(host: "127.0.0.1", port: peer.port)
        let replies = await Self.threeCalls(client)
        for funcID: UInt32 in 1...3 {
            #expect(throws: ClientError.connectionClosed) { _ = try replies[funcID]?.get() }
        }
        peer.serve { connection in
            let ids = connection.requests(1)
            connection.write(ArraySlice(ScriptedPeer.reply(1, ids[1]!, Self.body(100_000, 8))))
        }
        let reply = try await client.call(1, body: [0xc0]).body
        #expect(Self.same(.success(reply), Self.body(100_000, 8)), "\(reply.count) bytes")
    }

    @Test func aRequestWithLargeBinariesGoesOutAsTheEncodingOfItsArguments() async throws {
        let peer = try ScriptedPeer()
        let arguments: [MessagePackValue] = [
            .uint(7), .binary(Self.body(PreparedCall<Void>.uncopiedBinaryBytes, 11)), .string("between"), .binary(Self.body(300_000, 12)),
            .binary([1, 2, 3]),
        ]
        var writer = MessagePackWriter()
        for argument in arguments { writer.write(argument) }
        let expected = writer.bytes
        let received = Mutex<[UInt8]?>(nil)
        peer.serve { connection in
            guard let request = connection.request() else { return }
            received.withLock { $0 = request.body }
            connection.write(ArraySlice(ScriptedPeer.reply(request.funcID, request.requestID, [0xc0])))
        }
        let call = PreparedCall<Void>(0x0004_0001, name: "TEST", arguments: arguments) { (values: inout Arguments) throws(IProtoError) in
            try values.nil()
        }
        #expect(call.pieces.count == 5, "the large binaries are pieces of their own")
        #expect(Self.same(.success(call.body), expected), "PreparedCall.body joins the pieces")
        let client = IProtoClient(host: "127.0.0.1", port: peer.port)
        try await client.call(call)
        let body = received.withLock { $0 }
        #expect(body?.count == expected.count)
        #expect(Self.same(body.map { .success($0) }, expected), "the body as sent is the arguments' encoding")
    }

    @Test func aLargeBodyTooSlowForItsCallTimesItOutAndTheConnectionStaysInStep() async throws {
        let peer = try ScriptedPeer()
        let large = Self.body(400_000, 9), next = Self.body(80_000, 10)
        peer.serve { connection in
            let ids = connection.requests(1)
            let stream = ScriptedPeer.reply(1, ids[1]!, large)
            connection.write(stream.prefix(100_000), pause: 0.6)
            connection.write(stream.dropFirst(100_000))
            let more = connection.requests(1)
            connection.write(ArraySlice(ScriptedPeer.reply(2, more[2]!, next)))
        }
        var configuration = ClientConfiguration()
        configuration.callTimeout = .milliseconds(300)
        let client = IProtoClient(host: "127.0.0.1", port: peer.port, configuration: configuration)
        await #expect(throws: ClientError.timedOut) { _ = try await client.call(1, body: [0xc0]) }
        // The late body is read to its end and dropped: the next reply on the same connection is whole.
        try await Task.sleep(for: .milliseconds(500))
        let reply = try await client.call(2, body: [0xc0], timeout: .seconds(5)).body
        #expect(Self.same(.success(reply), next), "\(reply.count) bytes")
    }
}
