import Foundation
import IProto
import KVAPI
import KVClient
import Synchronization
import Testing

/// KVClient against scripted in-process servers: a follower that names the
/// leader, a leader that answers, a node that has stopped.
@Suite(.serialized) struct KVClientTests {
    static let key = "0b5c8f5e-4a3b-4c1d-9e2f-1a2b3c4d5e6f"

    static func status(leader: String, nodes: [String], warnings: [String] = []) -> MessagePackValue {
        .map([
            MessagePackPair("nodes", .array(nodes.map { address in
                .map([MessagePackPair("id", .string(address)), MessagePackPair("address", .string(address)),
                      MessagePackPair("role", .string(address == leader ? "leader" : "follower")), MessagePackPair("alive", .bool(true))])
            })),
            MessagePackPair("leader", .string(leader)),
            MessagePackPair("replication_factor", .uint(2)),
            MessagePackPair("warnings", .array(warnings.map { .string($0) })),
        ])
    }

    @Test func followsTheLeaderAFollowerNames() async throws {
        let stored = Mutex<MessagePackValue>(.nil)
        let leader = try Scripted { function, request throws(IProtoError) in
            if function == KVFunction.set.rawValue {
                var arguments = try request.arguments(2)
                _ = try arguments.string()
                stored.withLock { $0 = .stringBytes(Array("hello".utf8)) }
                return .nil
            }
            return stored.withLock { $0 }
        }
        defer { leader.stop() }
        let follower = try Scripted { _, _ throws(IProtoError) in
            throw IProtoError(.kvNotLeader, "not the leader; the leader is \(leader.address)")
        }
        defer { follower.stop() }
        let client = KVClient(nodes: [follower.address])
        defer { client.close() }
        try await client.set(Self.key, KVValue.text("hello"))
        #expect(client.currentNode == leader.address)
        #expect(try await client.get(Self.key) == KVValue.text("hello"))
        #expect(follower.calls == 1, "after the redirect, calls go to the leader only")
        var events = client.events.makeAsyncIterator()
        #expect(await events.next() == .switchedNode(from: follower.address, to: leader.address, why: "\(follower.address) is not the leader"))
    }

    @Test func skipsANodeThatDoesNotAnswerAndReportsIt() async throws {
        let live = try Scripted { function, _ in function == KVFunction.get.rawValue ? .binary([1, 2]) : .nil }
        defer { live.stop() }
        let client = KVClient(nodes: ["127.0.0.1:1", live.address])
        defer { client.close() }
        #expect(try await client.get(Self.key) == .binary([1, 2]))
        #expect(client.currentNode == live.address)
    }

    @Test func aWriteWithoutAnAnswerIsAnUnknownOutcomeNotRetried() async throws {
        var configuration = KVClientConfiguration()
        configuration.callTimeout = .milliseconds(300)
        let slow = try Scripted { _, _ in
            usleep(1_000_000)  // past the client's deadline
            return .nil
        }
        defer { slow.stop() }
        let client = KVClient(nodes: [slow.address], configuration: configuration)
        defer { client.close() }
        await #expect(throws: KVClientError.self) { try await client.set(Self.key, KVValue.text("x")) }
        do {
            try await client.set(Self.key, KVValue.text("x"))
        } catch {
            guard case .outcomeUnknown = error else { Issue.record("expected outcomeUnknown, got \(error)"); return }
        }
        try await Task.sleep(for: .milliseconds(2500))  // the server works through what reached it
        #expect(slow.calls == 2, "one call per set: a write that may have happened is not sent again")
    }

    @Test func refusalsAreNotRetriedAndSayWhy() async throws {
        let leader = try Scripted { _, _ throws(IProtoError) in throw IProtoError(.kvReplicasUnavailable, "needs 2 of 2 replicas, 1 reachable") }
        defer { leader.stop() }
        let client = KVClient(nodes: [leader.address])
        defer { client.close() }
        do {
            try await client.set(Self.key, KVValue.text("x"))
            Issue.record("a refused write succeeded")
        } catch {
            #expect(error.description == "kv_replicas_unavailable: needs 2 of 2 replicas, 1 reachable")
        }
        #expect(leader.calls == 1)
    }

    @Test func heartbeatsLearnTheLeaderTheNodesAndTheWarnings() async throws {
        let holder = Mutex<String>("")
        let leader = try Scripted { _, _ in Self.status(leader: holder.withLock { $0 }, nodes: [holder.withLock { $0 }, "127.0.0.1:9"], warnings: ["replication factor 2 exceeds the 1 live node"]) }
        defer { leader.stop() }
        holder.withLock { $0 = leader.address }
        let client = KVClient(nodes: ["127.0.0.1:1", leader.address])
        defer { client.close() }
        let status = try await client.heartbeat()
        #expect(status.leader == leader.address && status.replicationFactor == 2 && status.nodes.count == 2)
        #expect(status.warnings == ["replication factor 2 exceeds the 1 live node"])
        #expect(client.currentNode == leader.address)
        var seen: [KVClientEvent] = []
        for await event in client.events {
            seen.append(event)
            if case .warnings = event { break }
        }
        #expect(seen.contains(.leaderChanged(leader.address)))
        #expect(seen.contains(.warnings(["replication factor 2 exceeds the 1 live node"])))
    }
}

/// A server answering KV_SET/KV_GET/KV_HEARTBEAT with `answer`, counting calls.
/// A server answering KV_SET/KV_GET/KV_DELETE/KV_HEARTBEAT with a script, counting calls.
final class Scripted: Sendable {
    let server: Server
    private let counter = Counter()
    var address: String { "127.0.0.1:\(server.port)" }

    init(_ answer: @escaping @Sendable (UInt32, Request) throws(IProtoError) -> MessagePackValue) throws {
        var handlers = Handlers()
        let counter = counter
        for function in [KVFunction.set, .get, .delete, .heartbeat] {
            handlers.register(function.rawValue) { request in
                counter.value.withLock { $0 += 1 }
                return try answer(function.rawValue, request)
            }
        }
        server = try Server(configuration: .init(host: "127.0.0.1", port: 0), handlers: handlers)
        try server.start()
    }

    var calls: Int { counter.value.withLock { $0 } }

    func stop() {
        server.shutdown()
        server.wait()
    }
}


final class Counter: Sendable {
    let value = Mutex(0)
}
