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
    /// Each worker's connections to the replicas, used from its own thread.
    private let peerCalls: PerWorker<BlockingCalls>

    init(node: KVNode, workers: Int) {
        self.node = node
        staged = PerWorker(workers: workers) { Stage() }
        peerCalls = PerWorker(workers: workers) { node.peers.blockingCalls() }
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
    /// write quorum; throws otherwise. A replica still to answer then is not waited
    /// for: its reply is dropped, and repair covers it if it missed the records.
    private func replicate(_ writes: [Write], term: LeaderTerm) throws(IProtoError) {
        let quorum = Quorum(replicationFactor: node.replicationFactor)
        var grouped: [ClusterView.Node: [Int]] = [:]
        for (index, write) in writes.enumerated() {
            for owner in write.owners { grouped[owner, default: []].append(index) }
        }
        let records = writes.map(\.record)
        let started = ContinuousClock.now
        defer {
            node.metrics.replicatedBatches.increment()
            node.metrics.replicatedRecords.increment(by: writes.count)
            node.metrics.replicationDuration.record((ContinuousClock.now - started) / .seconds(1))
        }
        var acknowledgements = [Int](repeating: 0, count: writes.count)
        var short = writes.count  // records still short of a write quorum
        func acknowledge(_ indices: some Sequence<Int>) {
            for index in indices {
                acknowledgements[index] += 1
                if acknowledgements[index] == quorum.write { short -= 1 }
            }
        }
        // Each replica's records go in calls of at most --peer-call-bytes, one after another.
        let epoch = term.epoch
        var runs: [ClusterView.Node: [Range<Int>]] = [:]
        exchange(with: Array(grouped.keys), calls: { owner in
            let theirs = grouped[owner]!.map { records[$0] }
            let calls = ReplicaRecord.calls(theirs, maxBytes: node.configuration.peerCallBytes)
            if calls.count > 1 { node.metrics.replicaCallsSplit.increment() }
            runs[owner] = calls
            return calls.map { Self.replicaWrite(Array(theirs[$0]), epoch: epoch) }
        }, local: { [node] me in
            let mine = grouped[me]!
            if Self.applyLocally(mine.map { records[$0] }, epoch: epoch, node: node) { acknowledge(mine) }
            return short == 0
        }, received: { owner, call, result in
            switch result {
            case .success:
                acknowledge(runs[owner]![call].map { grouped[owner]![$0] })
            case .failure(let error):
                noteFailure(error, of: owner, epoch: epoch)
            }
            return short == 0
        })
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

    /// Sends each of `owners` that is another node its calls (`plan`), one after
    /// another (the next once the previous has succeeded), from this thread over the
    /// worker's own connections, and meanwhile runs `local` for this node if it is
    /// one of them (its share, which blocks on SQLite and fsync). Each call's result goes to `received` with the call's index in its
    /// owner's list. Returns when no call is left, or once `local` or `received` says
    /// it has enough and the others have had as long again as that took: a replica a
    /// little slower than the quorum still acknowledges in the batch (rather than
    /// piling up calls behind it), a stuck one is abandoned.
    private func exchange<Reply>(
        with owners: [ClusterView.Node], calls plan: (ClusterView.Node) -> [PreparedCall<Reply>],
        local: (ClusterView.Node) -> Bool, received: (ClusterView.Node, Int, Result<Reply, ClientError>) -> Bool
    ) {
        let me = node.member.id
        let mine = owners.first { $0.id.rawValue == me }
        let plan = owners.filter { $0.id.rawValue != me }.map { ($0, plan($0)) }
        withPeerCalls { calls in
            let started = ContinuousClock.now
            var pending: [BlockingCalls.Ticket: (owner: Int, call: Int)] = [:]
            for (owner, (node, list)) in plan.enumerated() where !list.isEmpty {
                pending[calls.start(list[0], to: node.address)] = (owner, 0)
            }
            let enough = mine.map(local) ?? false
            var grace: ContinuousClock.Instant? = enough ? .now + (.now - started) : nil
            while let (ticket, response) = calls.next(until: grace) {
                guard let (owner, index) = pending.removeValue(forKey: ticket) else { continue }
                let (node, list) = plan[owner]
                let result = response.flatMap { response in Result(catching: { () throws(ClientError) -> Reply in try list[index].reply(response) }) }
                if received(node, index, result), grace == nil { grace = .now + (.now - started) }
                if case .success = result, index + 1 < list.count {
                    pending[calls.start(list[index + 1], to: node.address)] = (owner, index + 1)
                }
            }
            calls.abandon()
        }
    }

    /// `body` with this worker's connections to the replicas (outside a server, as in
    /// tests, with connections of its own).
    private func withPeerCalls(_ body: (BlockingCalls) -> Void) {
        guard let worker = Handlers.currentWorker else {
            let calls = node.peers.blockingCalls()
            defer { calls.close() }
            return body(calls)
        }
        peerCalls.withLock(worker) { calls in body(calls) }
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

    /// The KV_REPLICA_WRITE of `records`.
    private static func replicaWrite(_ records: [ReplicaRecord], epoch: Epoch) -> PreparedCall<Void> {
        KVPeerCalls.replicaWrite(
            epoch: UInt(epoch.rawValue), keys: records.map(\.key), versions: records.map { UInt($0.version.rawValue) },
            kinds: records.map { UInt($0.kind.rawValue) }, values: records.map { $0.kind == .tombstone ? nil : $0.value })
    }

    /// Counts a replica call that failed; a replica fencing this leader's epoch makes it step down.
    private func noteFailure(_ error: ClientError, of owner: ClusterView.Node, epoch: Epoch) {
        node.metrics.replicationErrors.increment()
        node.logger.debug("a replica call failed", metadata: ["replica": "\(owner.address)", "error": "\(error)"])
        if case .server(let refusal) = error, refusal.code == .kvStaleEpoch {
            node.logger.warning("a replica has seen a newer epoch", metadata: ["replica": "\(owner.address)", "message": "\(refusal.message)"])
            node.stepDownIfOlder(than: Epoch(epoch.rawValue + 1))
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
        // Absent: the replica did not answer; nil: it has no record of the key.
        var answered: [ClusterView.Node: ReplicaRecord?] = [:]
        let read = KVPeerCalls.replicaRead(epoch: UInt(term.epoch.rawValue), key: key)
        exchange(with: asked, calls: { _ in [read] }, local: { [node] me in
            if let record = Self.readLocally(key, node: node) { answered[me] = record }
            return false
        }, received: { owner, _, result in
            if case .success(let answer) = result { answered[owner] = Self.record(key, from: answer) }
            return false
        })
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
            var repaired = 0
            exchange(with: behind, calls: { _ in [Self.replicaWrite([newest], epoch: term.epoch)] }, local: { [node] _ in
                if Self.applyLocally([newest], epoch: term.epoch, node: node) { repaired += 1 }
                return false
            }, received: { owner, _, result in
                switch result {
                case .success: repaired += 1
                case .failure(let error): noteFailure(error, of: owner, epoch: term.epoch)
                }
                return false
            })
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

    /// The record a KV_REPLICA_READ answered (nil: the replica has none).
    private static func record(_ key: String, from answer: (version: UInt, kind: UInt, value: [UInt8]?)) -> ReplicaRecord? {
        guard answer.version > 0, let kind = ValueKind(rawValue: UInt8(truncatingIfNeeded: answer.kind)) else { return nil }
        return ReplicaRecord(key: key, version: Version(rawValue: UInt64(answer.version)), kind: kind, value: answer.value ?? [])
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
