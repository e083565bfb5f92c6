import IProto
import KVAPI
import IProtoClient
import KVReplication
import Synchronization

/// The client API (kv.iproto-api), served by the leader.
///
/// A SET or DELETE is checked, versioned and staged by its handler; the
/// worker's reply barrier then sends the whole batch to the keys' replicas
/// (one call per replica) and waits until each record is durable on a write
/// quorum of its replicas. Only then do the batch's replies leave: a success
/// means "on a quorum, durably". When a quorum does not acknowledge, every
/// reply of the batch becomes ``IProto/ReturnCode/kvOutcomeUnknown``: the
/// records reached some replicas and may surface later, so the client must
/// not take it as a failure.
///
/// A GET in the same batch as a write of its key sees the staged write, and
/// its reply is replaced too if the write is not acknowledged, so no reply
/// ever shows a value that was not made durable.
final class LeaderService: KVService {
    let node: KVNode

    private struct Write: Sendable {
        var record: ReplicaRecord
        var owners: [ClusterView.Node]
    }

    private struct Stage: Sendable {
        var term: LeaderTerm?
        var writes: [Write] = []
        var latest: [String: ReplicaRecord] = [:]
    }

    private let staged: PerWorker<Stage>

    init(node: KVNode, workers: Int) {
        self.node = node
        staged = PerWorker(workers: workers) { Stage() }
    }

    // MARK: KV_SET, KV_DELETE

    func set(key: String, value: MessagePackValue) throws(IProtoError) {
        let kind: ValueKind
        let bytes: [UInt8]
        switch value {
        case .stringBytes(let value): (kind, bytes) = (.str, value)
        case .string(let value): (kind, bytes) = (.str, Array(value.utf8))
        case .binary(let value): (kind, bytes) = (.bin, value)
        default: throw IProtoError(.badArguments, "value must be a string or binary, got \(Self.typeName(value))")
        }
        guard bytes.count <= node.configuration.maxValueBytes else {
            throw IProtoError.tooLong("value", length: bytes.count, limit: node.configuration.maxValueBytes)
        }
        try write(key: key, kind: kind, value: bytes)
    }

    func delete(key: String) throws(IProtoError) {
        try write(key: key, kind: .tombstone, value: [])
    }

    private func write(key text: String, kind: ValueKind, value: [UInt8]) throws(IProtoError) {
        let key = try Self.parse(text)
        let term = try node.leaderTerm()
        let view = node.view
        let owners = view.owners(of: key.text)
        let reachable = owners.filter { view.alive.contains($0.id) }.count
        guard view.quorum.canWrite(reachable: reachable) else {
            node.metrics.writesRefused.increment()
            throw IProtoError(.kvReplicasUnavailable, view.quorum.writeRefusal(reachable: reachable))
        }
        let record = ReplicaRecord(key: key.text, version: try term.nextVersion(), kind: kind, value: value)
        guard let worker = Handlers.currentWorker else {
            return try replicate([Write(record: record, owners: owners)], term: term)  // outside a server (tests)
        }
        staged.withLock(worker) { stage in
            if let staged = stage.term, staged !== term {
                // A batch never spans terms: its records carry one epoch.
                stage = Stage()
            }
            stage.term = term
            stage.writes.append(Write(record: record, owners: owners))
            stage.latest[record.key] = record
        }
    }

    /// The reply barrier: replicates this worker's staged writes.
    func commit(worker: Int) throws(IProtoError) {
        let stage = staged.withLock(worker) { stage in
            defer { stage = Stage() }
            return stage
        }
        guard let term = stage.term, !stage.writes.isEmpty else { return }
        guard term.isHeld else {
            throw IProtoError(.kvNoLeader, "no leader: the leader lease lapsed before the write was replicated; nothing was written")
        }
        try replicate(stage.writes, term: term)
    }

    /// Sends `writes` to their replicas, one call per replica (more when the values
    /// exceed `--peer-call-bytes`), and returns once every record is durable on a
    /// write quorum; throws otherwise.
    private func replicate(_ writes: [Write], term: LeaderTerm) throws(IProtoError) {
        let quorum = Quorum(replicationFactor: node.replicationFactor)
        var grouped: [ClusterView.Node: [Int]] = [:]
        for (index, write) in writes.enumerated() {
            for owner in write.owners { grouped[owner, default: []].append(index) }
        }
        let byOwner = grouped
        let records = writes.map(\.record)
        let started = ContinuousClock.now
        defer {
            node.metrics.replicatedBatches.increment()
            node.metrics.replicatedRecords.increment(by: writes.count)
            node.metrics.replicationDuration.record((ContinuousClock.now - started) / .seconds(1))
        }
        // Each owner's answer: how many of its records, from the first, it made durable.
        let durable = fanOut(
            to: Array(byOwner.keys),
            local: { [node] owner in
                let indices = byOwner[owner]!
                return Self.applyLocally(indices.map { records[$0] }, epoch: term.epoch, node: node) ? indices.count : 0
            },
            remote: { [node] owner in
                await Self.send(byOwner[owner]!.map { records[$0] }, to: owner, epoch: term.epoch, node: node)
            })
        var acknowledgements = [Int](repeating: 0, count: writes.count)
        for (owner, count) in durable {
            for index in byOwner[owner]!.prefix(count) { acknowledgements[index] += 1 }
        }
        let fewest = acknowledgements.min() ?? 0
        guard fewest >= quorum.write else {
            // Some replicas may hold these records, and repair may spread them:
            // the term no longer knows these keys' values.
            term.forget(records.map(\.key))
            node.metrics.outcomeUnknown.increment()
            throw IProtoError(.kvOutcomeUnknown, quorum.outcomeUnknown(acknowledged: fewest))
        }
        for record in records { term.remember(record) }
    }

    /// Runs `remote` for each of `owners` that is another node, concurrently on the
    /// cooperative pool, while `local` runs for this node (if it is one of them) on
    /// the calling thread, a server worker's: the local replica blocks on SQLite and
    /// fsync, which must never happen on the pool, whose few threads also run every
    /// peer call's continuation. Each owner's result.
    private func fanOut<Result: Sendable>(
        to owners: [ClusterView.Node], local: (ClusterView.Node) -> Result,
        remote: @escaping @Sendable (ClusterView.Node) async -> Result
    ) -> [ClusterView.Node: Result] {
        let me = node.member.id
        let peers = owners.filter { $0.id.rawValue != me }
        let pending = peers.isEmpty ? nil : BlockingTask { () async -> [(ClusterView.Node, Result)] in
            await withTaskGroup(of: (ClusterView.Node, Result).self) { group in
                for peer in peers { group.addTask { (peer, await remote(peer)) } }
                var results: [(ClusterView.Node, Result)] = []
                for await result in group { results.append(result) }
                return results
            }
        }
        var results: [ClusterView.Node: Result] = [:]
        if let mine = owners.first(where: { $0.id.rawValue == me }) { results[mine] = local(mine) }
        for (owner, result) in pending?.wait() ?? [] { results[owner] = result }
        return results
    }

    /// This node's replica of `records`, made durable on this thread; true when it was.
    private static func applyLocally(_ records: [ReplicaRecord], epoch: Epoch, node: KVNode) -> Bool {
        do {
            try node.applyDurably(records, epoch: epoch)
            return true
        } catch {
            node.logger.warning("leader cannot persist its own replica", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// `records` to another node's replica, in calls of at most `--peer-call-bytes`
    /// each, one after another; how many, from the first, it made durable. Stops at
    /// the first call that fails: the replica is down or fencing this leader.
    private static func send(_ records: [ReplicaRecord], to owner: ClusterView.Node, epoch: Epoch, node: KVNode) async -> Int {
        let calls = ReplicaRecord.calls(records, maxBytes: node.configuration.peerCallBytes)
        guard calls.count > 1 else { return await call(records, to: owner, epoch: epoch, node: node) ? records.count : 0 }
        node.metrics.replicaCallsSplit.increment()
        var durable = 0
        for run in calls {
            guard await call(Array(records[run]), to: owner, epoch: epoch, node: node) else { break }
            durable = run.upperBound
        }
        return durable
    }

    /// One call to another node's replica; true when it made `records` durable.
    private static func call(_ records: [ReplicaRecord], to owner: ClusterView.Node, epoch: Epoch, node: KVNode) async -> Bool {
        do {
            try await node.peers.client(owner.address).replicaWrite(
                epoch: UInt(epoch.rawValue), keys: records.map(\.key), versions: records.map { UInt($0.version.rawValue) },
                kinds: records.map { UInt($0.kind.rawValue) }, values: records.map { $0.kind == .tombstone ? nil : $0.value })
            return true
        } catch {
            node.metrics.replicationErrors.increment()
            if case .server(let refusal) = error, refusal.code == .kvStaleEpoch {
                node.logger.warning("a replica has seen a newer epoch", metadata: ["replica": "\(owner.address)", "message": "\(refusal.message)"])
                node.stepDownIfOlder(than: Epoch(epoch.rawValue + 1))
            }
            return false
        }
    }

    // MARK: KV_GET

    func get(key text: String) throws(IProtoError) -> MessagePackValue {
        let key = try Self.parse(text)
        let term = try node.leaderTerm()
        if let worker = Handlers.currentWorker,
            let staged = staged.withLock(worker, { $0.term === term ? $0.latest[key.text] : nil })
        {
            return Self.reply(staged)
        }
        if let cached = term.cached(key.text) { return Self.reply(cached) }
        return Self.reply(try quorumRead(key.text, term: term))
    }

    /// Reads the key from a read quorum of its replicas (and, while a placement
    /// change settles, from a read quorum under each older placement too), takes
    /// the newest version, writes it back until a write quorum of its current
    /// replicas holds it (so that every later read sees it), and remembers it for the term.
    private func quorumRead(_ key: String, term: LeaderTerm) throws(IProtoError) -> ReplicaRecord? {
        node.metrics.quorumReads.increment()
        let view = node.view
        let quorum = view.quorum
        let sets = view.readSets(of: key)
        var asked: [ClusterView.Node] = []
        for owner in sets.joined() where view.alive.contains(owner.id) && !asked.contains(owner) { asked.append(owner) }
        // nil: the replica did not answer; .some(nil): it has no record of the key.
        let answers = fanOut(
            to: asked,
            local: { [node] _ in Self.readLocally(key, node: node) },
            remote: { [node] owner in await Self.read(key, from: owner, epoch: term.epoch, node: node) })
        let answered = answers.compactMapValues { $0 }
        for set in sets {
            let count = set.filter { answered[$0] != nil }.count
            guard count >= quorum.read else { throw IProtoError(.kvReadUnavailable, quorum.readRefusal(reachable: count)) }
        }
        let newest = answered.values.compactMap { $0 }.max { $0.version < $1.version }
        guard let newest else {
            // No replica of the quorum has the key: absent for the rest of the term
            // (until this leader writes it), remembered as a tombstone of version 0.
            term.remember(.tombstone(key: key, version: .zero))
            return nil
        }
        let current = sets[0]
        let holders = current.filter { answered[$0]??.version == newest.version }.count
        if holders < quorum.write {
            let behind = current.filter { answered[$0] != nil && answered[$0]??.version != newest.version }
            let repaired = fanOut(
                to: behind,
                local: { [node] _ in Self.applyLocally([newest], epoch: term.epoch, node: node) },
                remote: { [node] owner in await Self.call([newest], to: owner, epoch: term.epoch, node: node) }
            ).values.filter { $0 }.count
            node.metrics.readRepairs.increment(by: repaired)
            guard holders + repaired >= quorum.write else {
                throw IProtoError(.kvReadUnavailable, "needs \(quorum.write) replicas holding the newest version, \(holders + repaired) do")
            }
        }
        term.remember(newest)
        return newest
    }

    /// This node's record of `key` (absent: nil inside), or nil when it cannot
    /// answer: still catching up after its start, or its store failed.
    private static func readLocally(_ key: String, node: KVNode) -> ReplicaRecord?? {
        guard node.isReady else { return nil }
        do { return .some(try node.readLocal(key)) } catch { return nil }
    }

    /// Another node's record of `key` (absent: nil inside), or nil when it did not answer.
    private static func read(_ key: String, from owner: ClusterView.Node, epoch: Epoch, node: KVNode) async -> ReplicaRecord?? {
        guard let answer = try? await node.peers.client(owner.address).replicaRead(epoch: UInt(epoch.rawValue), key: key) else {
            return nil
        }
        guard answer.version > 0, let kind = ValueKind(rawValue: UInt8(truncatingIfNeeded: answer.kind)) else { return .some(nil) }
        return .some(ReplicaRecord(key: key, version: Version(rawValue: UInt64(answer.version)), kind: kind, value: answer.value ?? []))
    }

    // MARK: KV_HEARTBEAT

    func heartbeat() throws(IProtoError) -> MessagePackValue {
        let view = node.view
        let nodes: [MessagePackValue] = view.nodes.map { member in
            .map([
                MessagePackPair("id", .string(member.id.rawValue)),
                MessagePackPair("address", .string(member.address)),
                MessagePackPair("role", .string(view.leader?.id == member.id ? "leader" : "follower")),
                MessagePackPair("alive", .bool(view.alive.contains(member.id))),
            ])
        }
        return .map([
            MessagePackPair("nodes", .array(nodes)),
            MessagePackPair("leader", view.leader.map { .string($0.address) } ?? .nil),
            MessagePackPair("replication_factor", .uint(UInt64(view.replicationFactor))),
            MessagePackPair("warnings", .array(view.warnings.map { .string($0) })),
        ])
    }

    // MARK: Helpers

    private static func parse(_ text: String) throws(IProtoError) -> KVKey {
        do { return try KVKey(text) } catch { throw IProtoError(.badArguments, error.description) }
    }

    private static func reply(_ record: ReplicaRecord?) -> MessagePackValue {
        guard let record else { return .nil }
        switch record.kind {
        case .str: return .stringBytes(record.value)
        case .bin: return .binary(record.value)
        case .tombstone: return .nil
        }
    }

    private static func typeName(_ value: MessagePackValue) -> String {
        switch value {
        case .nil: "nil"
        case .bool: "boolean"
        case .int, .uint: "integer"
        case .double: "float"
        case .string, .stringBytes: "string"
        case .binary: "binary"
        case .array: "array"
        case .map: "map"
        }
    }
}
