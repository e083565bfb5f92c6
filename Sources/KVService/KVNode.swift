import ClusterCoordination
import EtcdClient
import Foundation
import IProto
import KVAPI
import IProtoClient
import KVReplication
import KVStore
import Logging
import Metrics
import Synchronization

/// One node of the key-value cluster: a replica of the keys placed on it,
/// and, while it holds the etcd election, the leader every client talks to.
///
/// This type is the shell around pure decisions (``ClusterView``,
/// ``Placement``, ``Quorum``): it runs the loops that refresh the view from
/// etcd and from heartbeats, campaigns, and copies missed records; the
/// request paths are ``LeaderService`` and ``ReplicaService``.
public final class KVNode: Sendable {
    public let configuration: KVNodeConfiguration
    let store: ReplicaStore
    let registry: ClusterRegistry
    let etcdEndpoints: [String]
    let replicationFactor: Int
    let peers: Peers
    let logger: Logger
    let metrics: KVMetrics
    /// Every metric the node records, with its help text.
    public static var metricHelp: [String: String] { KVMetrics.help }

    private struct State {
        var member: Member
        var nodes: [ClusterView.Node] = []
        var leader: ClusterView.Node?
        var lastHeard: [NodeID: ContinuousClock.Instant] = [:]
        var membershipRefreshed: ContinuousClock.Instant?
        var term: LeaderTerm?
        var ready = false
        var stopping = false
        /// The leader's placement as last read from etcd, and the revision it was written at.
        var placement: PlacementRecord?
        var placementRevision: Revision?
        /// Per member, through which placement version it has repaired (from its heartbeat answers).
        var repairedThrough: [NodeID: Int] = [:]
        /// The placement version at the start of this node's last complete repair round.
        var ownRepairedThrough = 0
    }

    private let state: Mutex<State>
    private let epochSeen: Atomic<UInt64>
    private let groupCommit = GroupCommit()
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let started = ContinuousClock.now

    // MARK: Start

    /// Opens the data directory, finds the cluster (from `--etcd`, `--join`,
    /// or what the directory remembers), and checks the replication factor
    /// against the cluster's, all before anything is served.
    public static func open(configuration proposed: KVNodeConfiguration, logger: Logger) async throws(StartFailure) -> KVNode {
        let configuration: KVNodeConfiguration
        do { configuration = try proposed.validated() } catch { throw .configuration(error.description) }
        let store: ReplicaStore
        do {
            try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
            store = try ReplicaStore(directory: configuration.dataDirectory)
        } catch {
            throw .data("cannot open the data directory \(configuration.dataDirectory): \(error)")
        }
        func meta(_ name: String) -> String? { (try? store.meta(name)) ?? nil }

        var cluster = meta("cluster") ?? configuration.cluster
        var endpoints = configuration.etcdEndpoints ?? meta("etcd").map { $0.split(separator: ",").map(String.init) }
        if let join = configuration.join, configuration.etcdEndpoints == nil {
            var info = await Self.clusterInfo(at: join, timeout: configuration.etcdTimeout)
            let deadline = ContinuousClock.now + configuration.startTimeout
            while info == nil, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(200))
                info = await Self.clusterInfo(at: join, timeout: configuration.etcdTimeout)
            }
            guard let info else { throw .environment("cannot reach --join \(join) to learn the cluster") }
            if Int(info.replicationFactor) != configuration.replicationFactor {
                throw .configuration(
                    "replication factor \(configuration.replicationFactor) of this node differs from the cluster's \(info.replicationFactor) (learned from \(join))")
            }
            cluster = info.cluster
            endpoints = info.etcd
        }
        guard let endpoints, !endpoints.isEmpty else {
            throw .configuration("give --etcd URL,… (the first node) or --join HOST:PORT (any running node)")
        }
        let etcd = EtcdClient(endpoints: endpoints, requestTimeout: configuration.etcdTimeout)
        let registry = ClusterRegistry(etcd: etcd, cluster: cluster, service: "iproto-kv")
        var stored: Int?
        // etcd may be starting too (or busy): keep trying for a while before giving up.
        let deadline = ContinuousClock.now + configuration.startTimeout
        while stored == nil {
            do {
                stored = try await registry.replicationFactor(proposing: configuration.replicationFactor)
            } catch {
                guard ContinuousClock.now < deadline else {
                    throw .environment("cannot read the cluster's configuration from etcd \(endpoints.joined(separator: ",")): \(error)")
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        let factor = stored!
        guard factor == configuration.replicationFactor else {
            throw .configuration("replication factor \(configuration.replicationFactor) of this node differs from the cluster's \(factor)")
        }
        let id = meta("node_id") ?? UUID().uuidString.lowercased()
        do {
            try store.setMeta("node_id", id)
            try store.setMeta("cluster", cluster)
            try store.setMeta("etcd", endpoints.joined(separator: ","))
        } catch {
            throw .data("cannot write to the data directory: \(error)")
        }
        let highest = (try? store.highestEpoch) ?? .zero
        return KVNode(
            configuration: configuration, store: store, registry: registry, endpoints: endpoints, factor: factor,
            member: Member(id: id, address: configuration.advertise ?? ""), highestEpoch: highest, logger: logger)
    }

    private init(
        configuration: KVNodeConfiguration, store: ReplicaStore, registry: ClusterRegistry, endpoints: [String], factor: Int,
        member: Member, highestEpoch: Epoch, logger: Logger
    ) {
        self.configuration = configuration
        self.store = store
        self.registry = registry
        etcdEndpoints = endpoints
        replicationFactor = factor
        peers = Peers(
            callTimeout: configuration.peerTimeout, maxResponseBody: configuration.maxBodyBytes,
            maxUnansweredBytes: 2 * configuration.peerCallBytes)
        self.logger = logger
        metrics = KVMetrics()
        state = Mutex(State(member: member))
        epochSeen = Atomic(highestEpoch.rawValue)
    }

    private static func clusterInfo(at address: String, timeout: Duration) async -> (cluster: String, etcd: [String], replicationFactor: UInt)? {
        var configuration = ClientConfiguration()
        configuration.callTimeout = timeout
        let client = IProtoClient(address: address, configuration: configuration)
        defer { client.close() }
        return try? await client.clusterInfo()
    }

    /// The handlers of both roles and their reply barriers, for a server with `workers` workers.
    public func handlers(workers: Int) -> Handlers {
        var handlers = Handlers()
        let replica = ReplicaService(node: self, workers: workers)
        let leader = LeaderService(node: self, workers: workers)
        handlers.beforeReplies { worker throws(IProtoError) in try replica.commit(worker: worker) }
        handlers.beforeReplies { worker throws(IProtoError) in try leader.commit(worker: worker) }
        handlers.registerKVPeerService(replica)
        handlers.registerKVService(leader)
        return handlers
    }

    /// Registers the node at `address` (where the server listens, unless
    /// `--advertise` says otherwise) and starts its loops: membership, heartbeats, election, repair.
    public func start(listeningOn address: String) async throws(StartFailure) {
        let member = state.withLock { state in
            if state.member.address.isEmpty { state.member.address = address }
            return state.member
        }
        let deadline = ContinuousClock.now + configuration.startTimeout
        while true {
            do {
                for old in try await registry.register(member) {
                    logger.warning("replaced a node registered at the same address", metadata: ["old_id": "\(old.id)", "address": "\(old.address)"])
                }
                break
            } catch {
                guard ContinuousClock.now < deadline else { throw .environment("cannot register in etcd: \(error)") }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        try? await refreshMembership()
        logger.info(
            "node started",
            metadata: ["id": "\(member.id)", "address": "\(member.address)", "replication_factor": "\(replicationFactor)", "epoch": "\(highestEpoch)"])
        let membership = configuration.membershipInterval, heartbeat = configuration.heartbeatInterval
        let loops = [
            Task { await every(membership) { try? await self.refreshMembership() } },
            Task { await every(heartbeat) { await self.heartbeatPeers() } },
            Task { await self.campaignForever() },
            Task { await self.repairForever() },
            Task { await every(.seconds(1)) { self.publishMetrics() } },
        ]
        tasks.withLock { $0 = loops }
        // The store's upkeep blocks on the disk: a thread of its own, not the cooperative pool.
        Thread.detachNewThread { [self] in
            var round = 0
            while !state.withLock({ $0.stopping }) {
                Thread.sleep(forTimeInterval: 0.25)
                keepStore(count: round % 4 == 0)
                round += 1
            }
        }
    }

    /// Every 0.25 s, off the pool: a passive checkpoint of the write-ahead log, so that a
    /// commit that passes the log's cap has little left to copy; and every second, `count`,
    /// the keys gauge (a count of the table).
    private func keepStore(count: Bool) {
        if count, let keys = try? store.count { metrics.keys.record(keys) }
        do {
            try store.checkpoint()
        } catch {
            logger.warning("cannot checkpoint the store's write-ahead log", metadata: ["error": "\(error)"])
        }
    }

    /// Steps down (resigning, so a successor is elected at once) and stops the loops.
    public func stop() async {
        let term = state.withLock { state -> LeaderTerm? in
            state.stopping = true
            defer { state.term = nil }
            return state.term
        }
        if let term {
            logger.info("resigning leadership", metadata: ["epoch": "\(term.epoch)"])
            await registry.resign(term.key)
            await term.session.close(revoke: true)
        }
        for task in tasks.withLock({ $0 }) { task.cancel() }
        peers.closeAll()
    }

    public var member: Member { state.withLock { $0.member } }
    var isReady: Bool { state.withLock { $0.ready } }
    var highestEpoch: Epoch { Epoch(epochSeen.load(ordering: .relaxed)) }
    var repairedThrough: Int { state.withLock { $0.ownRepairedThrough } }

    // MARK: The view

    /// This node's picture of the cluster now.
    public var view: ClusterView {
        let now = ContinuousClock.now
        return state.withLock { state in
            var alive: Set<NodeID> = [NodeID(state.member.id)]
            for (id, heard) in state.lastHeard where now - heard < configuration.livenessTimeout { alive.insert(id) }
            var leader = state.leader
            if let term = state.term, term.isHeld { leader = ClusterView.Node(id: NodeID(state.member.id), address: state.member.address) }
            return ClusterView(nodes: state.nodes, alive: alive, leader: leader, replicationFactor: replicationFactor, placement: state.placement)
        }
    }

    func heard(from node: NodeID) {
        let now = ContinuousClock.now
        state.withLock { $0.lastHeard[node] = now }
    }

    /// The current term if this node leads and may serve; otherwise the error a client gets.
    func leaderTerm() throws(IProtoError) -> LeaderTerm {
        let now = ContinuousClock.now
        let (term, leader, refreshed, stopping) = state.withLock { ($0.term, $0.leader, $0.membershipRefreshed, $0.stopping) }
        if stopping { throw IProtoError(.shuttingDown, "node is shutting down") }
        guard let term else {
            if let leader, leader.id.rawValue != member.id {
                throw IProtoError(.kvNotLeader, "not the leader; the leader is \(leader.address)")
            }
            throw IProtoError(.kvNoLeader, "no leader: an election is in progress")
        }
        guard term.isHeld else { throw IProtoError(.kvNoLeader, "no leader: this node's leader lease lapsed (epoch \(term.epoch))") }
        guard let refreshed, now - refreshed < configuration.membershipMaxAge else {
            throw IProtoError(.kvNoLeader, "no leader: this node's member list is older than \(configuration.membershipMaxAge) (etcd unreachable?)")
        }
        return term
    }

    // MARK: The store

    /// Refuses an epoch older than the newest seen (`refusingOlder`), and
    /// persists a newer one once etcd confirms it; a leader that sees a newer
    /// epoch steps down. Runs on worker threads (it blocks on etcd only the
    /// first time a new epoch is seen).
    func checkEpoch(_ epoch: Epoch, refusingOlder: Bool = true) throws(IProtoError) {
        let seen = epochSeen.load(ordering: .acquiring)
        if epoch.rawValue < seen {
            if refusingOlder { throw IProtoError(.kvStaleEpoch, "epoch \(epoch) is older than \(seen), the newest this replica has seen") }
            return
        }
        guard epoch.rawValue > seen else { return }
        let confirmed = BlockingTask.run { [registry] in (try? await registry.leader())?.epoch }
        try adopt(epoch, confirmedBy: confirmed)
    }

    /// The same for async callers (heartbeats), which must not block a pool thread.
    func raiseEpoch(to epoch: Epoch) async {
        guard epoch.rawValue > epochSeen.load(ordering: .acquiring) else { return }
        let confirmed = (try? await registry.leader())?.epoch
        try? adopt(epoch, confirmedBy: confirmed)
    }

    /// An epoch is taken only if etcd's current leader is at least that new:
    /// otherwise any client could send a made-up epoch and fence the real
    /// leader out of every replica.
    private func adopt(_ epoch: Epoch, confirmedBy leaderEpoch: Revision?) throws(IProtoError) {
        guard let leaderEpoch, UInt64(leaderEpoch.rawValue) >= epoch.rawValue else {
            metrics.epochsRefused.increment()
            throw IProtoError(
                .kvUnknownEpoch, "epoch \(epoch) is newer than etcd's current leader (\(leaderEpoch.map { "epoch \($0)" } ?? "none"))")
        }
        do {
            let raised = try store.raiseEpoch(epoch)
            epochSeen.store(raised.rawValue, ordering: .releasing)
        } catch {
            throw IProtoError(.kvCannotPersist, "cannot persist epoch \(epoch): \(error)")
        }
        stepDownIfOlder(than: epoch)
    }

    func stepDownIfOlder(than epoch: Epoch) {
        let deposed = state.withLock { state -> LeaderTerm? in
            guard let term = state.term, term.epoch < epoch else { return nil }
            state.term = nil
            return term
        }
        if let deposed {
            logger.warning("stepped down: a newer leader exists", metadata: ["epoch": "\(deposed.epoch)", "newer": "\(epoch)"])
            metrics.leaderChanges.increment()
        }
    }

    /// Makes `records` durable in this node's store, sharing one commit with
    /// whatever other workers (and the leader's own replica writes) apply meanwhile.
    func applyDurably(_ records: [ReplicaRecord], epoch: Epoch) throws(IProtoError) {
        try groupCommit.commit(records, epoch: epoch) { records, epoch throws(IProtoError) in try applyNow(records, epoch: epoch) }
    }

    /// One transaction, now: what ``GroupCommit`` runs.
    private func applyNow(_ records: [ReplicaRecord], epoch: Epoch) throws(IProtoError) {
        do {
            _ = try store.apply(records, epoch: epoch)
            if epoch.rawValue > epochSeen.load(ordering: .relaxed) { epochSeen.store(epoch.rawValue, ordering: .releasing) }
        } catch {
            metrics.storeErrors.increment()
            if case .staleEpoch(let have, let got) = error {
                throw IProtoError(.kvStaleEpoch, "epoch \(got) is older than \(have), the newest this replica has seen")
            }
            throw IProtoError(.kvCannotPersist, "replica \(member.address) cannot persist: \(error)")
        }
    }

    func readLocal(_ key: String) throws(IProtoError) -> ReplicaRecord? {
        try storeCall { store throws(StoreError) in try store.read(key) }
    }

    func storeCall<T>(_ body: (ReplicaStore) throws(StoreError) -> T) throws(IProtoError) -> T {
        do {
            return try body(store)
        } catch {
            metrics.storeErrors.increment()
            throw IProtoError(.kvCannotPersist, "replica \(member.address): \(error)")
        }
    }

    // MARK: Loops

    private func refreshMembership() async throws {
        let (members, _) = try await registry.members()
        let leader = try await registry.leader()
        let placement = try await registry.record("placement")
        let record = placement.flatMap { try? JSONDecoder().decode(PlacementRecord.self, from: Data($0.value)) }
        let now = ContinuousClock.now
        let changed = state.withLock { state -> Bool in
            let nodes = members.map { ClusterView.Node(id: NodeID($0.id), address: $0.address) }
            let changed = nodes != state.nodes
            state.nodes = nodes
            state.leader = leader.map { ClusterView.Node(id: NodeID($0.member.id), address: $0.member.address) }
            state.membershipRefreshed = now
            if let record, record != state.placement {
                logger.info("placement changed", metadata: ["version": "\(record.version)", "nodes": "\(record.nodes.count)", "unsettled": "\(record.previous.count)"])
            }
            state.placement = record
            state.placementRevision = placement?.modRevision
            return changed
        }
        if changed { logger.info("members changed", metadata: ["members": "\(members.map(\.address))"]) }
        if let term = state.withLock({ $0.term }), term.isHeld { await place(term: term) }
    }

    /// The leader's placement step: records in etcd who holds keys now (joins,
    /// nodes gone longer than the grace period, returns) and when a change has
    /// settled, by a compare-and-swap on the record it last read.
    private func place(term: LeaderTerm) async {
        let now = ContinuousClock.now
        let (inputs, current, revision) = state.withLock { state -> (PlacementPlanner.Inputs, PlacementRecord?, Revision?) in
            let members = state.nodes.map(\.id)
            var alive: Set<NodeID> = [NodeID(state.member.id)]
            var gone: Set<NodeID> = []
            for id in members where id.rawValue != state.member.id {
                let heard = state.lastHeard[id]
                if let heard, now - heard < configuration.livenessTimeout { alive.insert(id) }
                // Silence counts from the later of the last answer and the start of this term.
                let silentSince = max(heard ?? term.started, term.started)
                if now - silentSince >= configuration.deadNodeGrace { gone.insert(id) }
            }
            var repaired = state.repairedThrough
            repaired[NodeID(state.member.id)] = state.ownRepairedThrough
            return (PlacementPlanner.Inputs(members: members, alive: alive, goneLongerThanGrace: gone, repairedThrough: repaired),
                    state.placement, state.placementRevision)
        }
        guard let (record, reason) = PlacementPlanner.next(after: current, inputs) else { return }
        guard let json = try? JSONEncoder().encode(record) else { return }
        let swapped = (try? await registry.swapRecord("placement", [UInt8](json), ifModRevision: revision)) ?? false
        if swapped {
            logger.notice("placement \(record.version): \(reason)", metadata: ["nodes": "\(record.nodes.count)", "unsettled": "\(record.previous.count)"])
            metrics.placementChanges.increment()
            try? await refreshPlacement()
        }
    }

    private func refreshPlacement() async throws {
        let placement = try await registry.record("placement")
        let record = placement.flatMap { try? JSONDecoder().decode(PlacementRecord.self, from: Data($0.value)) }
        state.withLock { state in
            state.placement = record
            state.placementRevision = placement?.modRevision
        }
    }

    private func heartbeatPeers() async {
        let me = member
        let others = view.nodes.filter { $0.id.rawValue != me.id }
        let epoch = UInt(highestEpoch.rawValue)
        await withTaskGroup(of: Void.self) { group in
            for node in others {
                group.addTask { [self] in
                    if let answer = try? await peers.client(node.address).peerPing(
                        node: me.id, address: me.address, epoch: epoch, timeout: configuration.heartbeatInterval * 2)
                    {
                        heard(from: NodeID(answer.node))
                        state.withLock { $0.repairedThrough[NodeID(answer.node)] = Int(answer.repairedThrough) }
                        if answer.highestEpoch > epoch { await raiseEpoch(to: Epoch(UInt64(answer.highestEpoch))) }
                    }
                }
            }
        }
        let view = view
        let shortfall = view.replicationShortfall
        if shortfall != metrics.lastShortfall.exchange(shortfall, ordering: .relaxed) {
            if shortfall > 0 {
                logger.warning("replication factor exceeds the live nodes", metadata: ["warnings": "\(view.warnings)"])
            } else {
                logger.info("every key can have its replication factor of copies again")
            }
        }
    }

    private func campaignForever() async {
        while !Task.isCancelled, !state.withLock({ $0.stopping }) {
            let session: Session
            do {
                session = try await Session.open(etcd: registry.etcd, ttl: configuration.leaseTTL, logger: logger)
            } catch {
                logger.debug("cannot open an etcd session", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            let key: LeaderKey
            do {
                key = try await registry.campaign(as: member, session: session)
            } catch {
                await session.close(revoke: true)
                if !Task.isCancelled { try? await Task.sleep(for: .milliseconds(200)) }
                continue
            }
            let term = LeaderTerm(key: key, session: session, cacheBytes: configuration.leaderCacheBytes, evictions: metrics.leaderCacheEvictions)
            guard term.epoch < ReplicaStore.maximumEpoch else {
                logger.critical("etcd's revision exceeds the largest epoch a version can hold; refusing to lead", metadata: ["epoch": "\(term.epoch)"])
                await session.close(revoke: true)
                return
            }
            await raiseEpoch(to: term.epoch)
            let won = state.withLock { state -> Bool in
                guard !state.stopping else { return false }
                state.term = term
                return true
            }
            guard won else {
                await registry.resign(key)
                await session.close(revoke: true)
                return
            }
            metrics.elections.increment()
            metrics.leaderChanges.increment()
            logger.notice("acquired leadership", metadata: ["epoch": "\(term.epoch)"])
            // Announce the epoch, so replicas refuse the old leader's late writes from now on.
            await heartbeatPeers()
            // Hold until the lease lapses or a newer leader deposes this one.
            while !Task.isCancelled, state.withLock({ $0.term === term }), term.isHeld {
                try? await Task.sleep(for: .milliseconds(50))
            }
            let lapsed = state.withLock { state -> Bool in
                guard state.term === term else { return false }
                state.term = nil
                return true
            }
            if lapsed {
                logger.warning("stepped down: the leader lease lapsed", metadata: ["epoch": "\(term.epoch)", "why": "\(term.session.lost ?? "not renewed in time")"])
                metrics.leaderChanges.increment()
            }
            await registry.resign(key)
            await session.close(revoke: true)
        }
    }

    /// Copies, from every live peer, the records this node should hold (by the
    /// current placement) and lacks or holds older. The first full round after
    /// the start makes the node ready to answer the leader's reads. A round that
    /// completes reports, in heartbeats, the placement version it started at:
    /// the leader settles a placement change once every placed node has repaired through it.
    private func repairForever() async {
        // One heartbeat round first, so that the first repair round knows who is alive.
        try? await Task.sleep(until: started + configuration.heartbeatInterval * 2)
        while !Task.isCancelled {
            let complete = await repairRound()
            if complete, !isReady {
                state.withLock { $0.ready = true }
                logger.info("caught up with the peers; serving reads as a replica")
            }
            try? await Task.sleep(for: configuration.repairInterval)
        }
    }

    /// One pass over every live peer's keys; true when every peer was read to the end.
    func repairRound() async -> Bool {
        let view = view
        let version = view.placement?.version ?? 0
        let me = NodeID(member.id)
        var complete = true
        for peer in view.nodes where peer.id != me {
            guard view.alive.contains(peer.id) else {
                continue  // read in a later round, once it answers heartbeats again
            }
            let client = peers.client(peer.address)
            var after = ""
            while !Task.isCancelled {
                guard let page = try? await client.replicaScan(after: after, limit: 1000) else {
                    complete = false
                    break
                }
                guard let last = page.keys.last else { break }
                // The local versions of the page's whole key range in one query: a round
                // reads every peer's keys, so a query per key cost a core at 50,000 keys.
                guard let local = try? store.versions(after: after, through: last) else {
                    complete = false
                    break
                }
                var wanted: [String] = []
                for (key, version) in zip(page.keys, page.versions) {
                    guard view.owners(of: key).contains(where: { $0.id == me }) else { continue }
                    if (local[key] ?? .zero).rawValue < UInt64(version) { wanted.append(key) }
                }
                if !wanted.isEmpty {
                    metrics.repairBacklog.record(wanted.count)
                    guard await repair(wanted, from: client) else {
                        complete = false
                        break
                    }
                }
                guard page.keys.count == 1000 else { break }
                after = last
            }
        }
        metrics.repairBacklog.record(0)
        if complete { state.withLock { $0.ownRepairedThrough = max($0.ownRepairedThrough, version) } }
        return complete
    }

    /// Copies `wanted` from the peer: as many KV_REPLICA_FETCH calls as the
    /// answers' byte budget takes (each answers a prefix of the keys asked, in
    /// order), applied as they come. False when a call or the store failed.
    private func repair(_ wanted: [String], from client: IProtoClient) async -> Bool {
        var remaining = wanted[...]
        while !remaining.isEmpty {
            guard let fetched = try? await client.replicaFetch(keys: Array(remaining)) else { return false }
            guard let last = fetched.keys.last, let answered = remaining.firstIndex(of: last) else { return true }
            remaining = remaining[(answered + 1)...]
            var records: [ReplicaRecord] = []
            for index in fetched.keys.indices {
                guard let kind = ValueKind(rawValue: UInt8(truncatingIfNeeded: fetched.kinds[index])) else { continue }
                records.append(
                    ReplicaRecord(
                        key: fetched.keys[index], version: Version(rawValue: UInt64(fetched.versions[index])), kind: kind,
                        value: fetched.values[index] ?? []))
            }
            do {
                let changed = try store.apply(records, epoch: highestEpoch)
                metrics.repaired.increment(by: changed)
                if changed > 0 { await tellLeader(repaired: records.map(\.key)) }
            } catch {
                logger.warning("repair cannot persist", metadata: ["error": "\(error)"])
                return false
            }
        }
        return true
    }

    /// A repair here changed `keys`: the leader must not answer them from its
    /// term cache any more (a write whose outcome was unknown may just have
    /// reached its quorum this way).
    private func tellLeader(repaired keys: [String]) async {
        let view = view
        guard let leader = view.leader else { return }
        if leader.id.rawValue == member.id {
            repairedElsewhere(keys)
        } else {
            try? await peers.client(leader.address).repaired(keys: keys)
        }
    }

    /// What KV_REPAIRED does on the leader.
    func repairedElsewhere(_ keys: [String]) {
        state.withLock { $0.term }?.forget(keys)
    }

    private func publishMetrics() {
        let view = view
        let term = state.withLock { $0.term }
        metrics.role.record(term?.isHeld == true ? 1 : 0)
        metrics.epoch.record(Int(highestEpoch.rawValue))
        metrics.shortfall.record(view.replicationShortfall)
        metrics.liveNodes.record(view.alive.count)
    }
}
