import ClusterCoordination
import EtcdClient
import Logging
import Testing

/// Against a real etcd 3.4 (Debian's etcd-server), started per test on loopback.
@Suite(.serialized) struct EtcdClientTests {
    @Test func putGetRangeDelete() async throws {
        let server = try await EtcdProcess.start()
        defer { server.stop() }
        let etcd = EtcdClient(endpoints: [server.url])
        let first = try await etcd.put("/t/a", Array("1".utf8))
        try await etcd.put("/t/b", Array("2".utf8))
        try await etcd.put("/u", Array("3".utf8))
        let a = try #require(try await etcd.get("/t/a"))
        #expect(a.text == "1" && a.createRevision == first && a.version == 1)
        #expect(try await etcd.get("/t/missing") == nil)
        #expect(try await etcd.range(prefix: "/t/").kvs.map(\.key) == ["/t/a", "/t/b"])
        #expect(try await etcd.delete("/t/a") == 1)
        #expect(try await etcd.get("/t/a") == nil)
    }

    @Test func txnCreatesOnlyIfAbsent() async throws {
        let server = try await EtcdProcess.start()
        defer { server.stop() }
        let etcd = EtcdClient(endpoints: [server.url])
        let won = try await etcd.txn([.absent("/c")], success: [.put(key: "/c", value: [1], lease: nil)], failure: [.get(key: "/c")])
        #expect(won.succeeded)
        let lost = try await etcd.txn([.absent("/c")], success: [.put(key: "/c", value: [2], lease: nil)], failure: [.get(key: "/c")])
        #expect(!lost.succeeded && lost.ranges.first?.first?.value == [1])
    }

    @Test func leaseExpiryDeletesItsKeys() async throws {
        let server = try await EtcdProcess.start()
        defer { server.stop() }
        let etcd = EtcdClient(endpoints: [server.url])
        let (lease, ttl) = try await etcd.grantLease(ttl: 1)
        #expect(ttl == 1)
        try await etcd.put("/leased", [1], lease: lease)
        #expect(try await etcd.keepAlive(lease) == 1)
        try await etcd.revoke(lease)
        #expect(try await etcd.get("/leased") == nil)
        await #expect(throws: EtcdError.leaseNotFound) { try await etcd.keepAlive(lease) }
    }

    @Test func unreachableEndpointIsSkipped() async throws {
        let server = try await EtcdProcess.start()
        defer { server.stop() }
        let etcd = EtcdClient(endpoints: ["http://127.0.0.1:1", server.url])
        try await etcd.put("/k", [7])
        #expect(try await etcd.get("/k")?.value == [7])
        let dead = EtcdClient(endpoints: ["http://127.0.0.1:1"], requestTimeout: .milliseconds(300))
        await #expect { try await dead.get("/k") } throws: { error in
            if case .unavailable = error as? EtcdError { return true }
            return false
        }
    }

    /// The epoch is the leader key's create revision; the next leader's is higher,
    /// and a deposed leader's resign does not remove its successor.
    @Test func electionHandsOverWithAHigherEpoch() async throws {
        let server = try await EtcdProcess.start()
        defer { server.stop() }
        let etcd = EtcdClient(endpoints: [server.url])
        let registry = ClusterRegistry(etcd: etcd, cluster: "test", service: "kv")
        let logger = Logger(label: "test")
        let one = try await Session.open(etcd: etcd, ttl: 1, logger: logger)
        let two = try await Session.open(etcd: etcd, ttl: 1, logger: logger)
        let a = Member(id: "a", address: "127.0.0.1:1"), b = Member(id: "b", address: "127.0.0.1:2")
        let first = try await registry.campaign(as: a, session: one)
        #expect(try await registry.leader()?.member == a)
        let waiting = Task { try await registry.campaign(as: b, session: two) }
        try await Task.sleep(for: .milliseconds(200))
        await one.close(revoke: true)  // resigning by revoking the lease
        let second = try await waiting.value
        #expect(second.revision > first.revision)
        #expect(try await registry.leader()?.member == b)
        #expect(try await registry.leader()?.epoch == second.revision)
        await registry.resign(first)  // stale: must not delete b's key
        #expect(try await registry.leader()?.member == b)
        #expect(try await etcd.isCurrent(second))
        #expect(try await !etcd.isCurrent(first))
        await two.close(revoke: true)
    }

    @Test func sessionIsLostWhenRenewalsStop() async throws {
        let server = try await EtcdProcess.start()
        let etcd = EtcdClient(endpoints: [server.url], requestTimeout: .milliseconds(200))
        let session = try await Session.open(etcd: etcd, ttl: 1, logger: Logger(label: "test"))
        try await Task.sleep(for: .milliseconds(1500))
        #expect(session.lost == nil, "renewals keep the lease")
        server.stop()
        // Held at most TTL × (1 - drift) - margin after the last renewal sent.
        try await Task.sleep(for: .milliseconds(1000))
        #expect(session.lost != nil)
        #expect(session.heldUntil < .now)
    }

    @Test func configurationIsCreatedOnce() async throws {
        let server = try await EtcdProcess.start()
        defer { server.stop() }
        let registry = ClusterRegistry(etcd: EtcdClient(endpoints: [server.url]), cluster: "c", service: "kv")
        #expect(try await registry.replicationFactor(proposing: 3) == 3)
        #expect(try await registry.replicationFactor(proposing: 2) == 3)
        try await registry.register(Member(id: "n2", address: "h:2"))
        try await registry.register(Member(id: "n1", address: "h:1"))
        #expect(try await registry.members().members.map(\.id) == ["n1", "n2"])
        // A new id at a registered address replaces that member.
        #expect(try await registry.register(Member(id: "n3", address: "h:1")) == [Member(id: "n1", address: "h:1")])
        #expect(try await registry.members().members.map(\.id) == ["n2", "n3"])
    }
}
