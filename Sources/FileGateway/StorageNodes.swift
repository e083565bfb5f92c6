import FileMetadata
import FilePlacement
import Foundation
import IProto
import IProtoClient
import Logging
import Synchronization
import VolumeAPI

/// The storage nodes the gateway knows, what it last heard from each (probed
/// with VOL_NODE_INFO every `probeInterval`), the bytes of committed parts on
/// each (from the metadata, kept current by the gateway's own commits), and
/// the reservations of uploads in flight. Placement reads its ``loads()``.
public final class StorageNodes: Sendable {
    public struct Status: Sendable {
        public var id: String
        public var address: String
        public var joined: Double
        public var capacityBytes: Int64
        /// Bytes the node's volumes take (its own figure: headers and not yet compacted parts included).
        public var usedBytes: Int64
        /// Bytes of committed files' parts placed on it (the gateway's figure, what placement evens out).
        public var liveBytes: Int64
        public var reservedBytes: Int64
        public var parts: Int
        public var readOnlyVolumes: Int
        public var alive: Bool
        public var lastSeen: ContinuousClock.Instant?
    }

    private struct Entry {
        var record: NodeRecord
        /// The transfers' connection, pipelined.
        var client: IProtoClient
        /// The probes' own connection: a probe queued behind megabytes of chunks on the
        /// transfers' connection would be late because the node is busy, not because it is gone.
        var probe: IProtoClient
        var capacityBytes: Int64 = 0
        var usedBytes: Int64 = 0
        var parts = 0
        var readOnlyVolumes = 0
        var lastSeen: ContinuousClock.Instant?
        /// The last probe failed: refused, broken off, or unanswered for the liveness timeout.
        var probeFailed = false

        init(record: NodeRecord, configuration: ClientConfiguration) {
            self.record = record
            client = IProtoClient(address: record.address, configuration: configuration)
            probe = IProtoClient(address: record.address, configuration: configuration)
        }

        /// Moves to the record's address: new connections there.
        mutating func move(to record: NodeRecord, configuration: ClientConfiguration) {
            if record.address != self.record.address {
                close()
                client = IProtoClient(address: record.address, configuration: configuration)
                probe = IProtoClient(address: record.address, configuration: configuration)
            }
            self.record = record
        }

        func close() {
            client.close()
            probe.close()
        }

        mutating func apply(_ info: (node: String, capacityBytes: UInt, usedBytes: UInt, parts: UInt, readOnlyVolumes: UInt), at time: ContinuousClock.Instant) {
            capacityBytes = Int64(clamping: info.capacityBytes)
            usedBytes = Int64(clamping: info.usedBytes)
            parts = Int(clamping: info.parts)
            readOnlyVolumes = Int(clamping: info.readOnlyVolumes)
            lastSeen = time
            probeFailed = false
        }
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var liveBytes: [String: Int64] = [:]
        var reservations = Reservations()
        /// Counts this gateway's own changes to `liveBytes`, so that a refresh read
        /// from the metadata before one of them does not overwrite it.
        var localChanges = 0
    }

    private let state = Mutex(State())
    private let metadata: any FileMetadataStore
    private let clientConfiguration: ClientConfiguration
    private let livenessTimeout: Duration
    private let logger: Logger

    init(metadata: any FileMetadataStore, callTimeout: Duration, livenessTimeout: Duration, maxChunkBytes: Int, logger: Logger) {
        self.metadata = metadata
        self.livenessTimeout = livenessTimeout
        self.logger = logger
        var configuration = ClientConfiguration()
        configuration.callTimeout = callTimeout
        configuration.connectTimeout = .seconds(2)
        configuration.maxReconnectBackoff = .milliseconds(500)
        configuration.maxResponseBody = maxChunkBytes + (64 << 10)
        // One pipelined connection per node: calls of every transfer share it, and the
        // gateway's memory holds one receive buffer per node, not per transfer.
        configuration.connections = 1
        clientConfiguration = configuration
    }

    /// Loads the nodes and the committed bytes on each from the metadata.
    func load() async throws {
        let records = try await metadata.nodes()
        let live = try await metadata.liveBytesByNode()
        state.withLock { state in
            for record in records { state.entries[record.id] = Entry(record: record, configuration: clientConfiguration) }
            state.liveBytes = live
        }
    }

    /// Registers the node at `address`: asks it for its id (VOL_NODE_INFO), records it
    /// (a known id at a new address moves), and counts it alive. Returns its id.
    @discardableResult
    func register(address: String) async throws(GatewayError) -> String {
        guard IProtoClient.split(address).port > 0 else { throw GatewayError(.badRequest, "\"\(address)\" is not HOST:PORT") }
        let probe = IProtoClient(address: address, configuration: clientConfiguration)
        defer { probe.close() }
        let info: (node: String, capacityBytes: UInt, usedBytes: UInt, parts: UInt, readOnlyVolumes: UInt)
        do {
            info = try await probe.nodeInfo(timeout: .seconds(3))
        } catch {
            throw GatewayError(.badGateway, "no storage node answers at \(address): \(error)")
        }
        let existing = state.withLock { $0.entries[info.node]?.record }
        let record = NodeRecord(id: info.node, address: address, joined: existing?.joined ?? Date().timeIntervalSince1970)
        if existing != record {
            do { try await metadata.saveNode(record) } catch { throw GatewayError(.serviceUnavailable, "cannot record the node: \(error)") }
            logger.info(existing == nil ? "node joined" : "node moved", metadata: ["node": "\(record.id)", "address": "\(address)"])
        }
        state.withLock { state in
            var entry = state.entries[record.id] ?? Entry(record: record, configuration: clientConfiguration)
            entry.move(to: record, configuration: clientConfiguration)
            entry.apply(info, at: .now)
            state.entries[record.id] = entry
        }
        return record.id
    }

    /// Picks up nodes and committed bytes that other gateways sharing the metadata
    /// recorded (a node registers at one gateway; the others learn it here).
    ///
    /// The bytes read are a snapshot: a commit of this gateway's that lands while they
    /// are read may or may not be in them, so they replace the running figures only if
    /// none did (else the fullest node could seem to get back a part it just gave
    /// away, for a refresh interval); the read is tried again, three times at most.
    func refreshFromMetadata() async {
        for _ in 0..<3 {
            let before = state.withLock { $0.localChanges }
            guard let records = try? await metadata.nodes(), let live = try? await metadata.liveBytesByNode() else { return }
            let replaced = state.withLock { state -> Bool in
                for record in records where state.entries[record.id]?.record.address != record.address {
                    var entry = state.entries[record.id] ?? Entry(record: record, configuration: clientConfiguration)
                    entry.move(to: record, configuration: clientConfiguration)
                    state.entries[record.id] = entry
                }
                guard state.localChanges == before else { return false }
                state.liveBytes = live
                return true
            }
            if replaced { return }
        }
    }

    /// Asks every node for its figures, concurrently; a node that refuses the probe,
    /// breaks it off or leaves it unanswered for the liveness timeout counts as down
    /// until a probe succeeds. Only a probe's own outcome decides: a gateway too busy
    /// to run this loop on time does not take every node for dead at once.
    func probeAll() async {
        let targets = state.withLock { $0.entries.map { ($0.key, $0.value.probe) } }
        await withTaskGroup(of: Void.self) { group in
            for (id, client) in targets {
                group.addTask {
                    let info = try? await client.nodeInfo(timeout: self.livenessTimeout)
                    self.state.withLock { state in
                        guard let info else {
                            state.entries[id]?.probeFailed = true
                            return
                        }
                        guard info.node == id else { return }  // another node took the address: it must register itself
                        state.entries[id]?.apply(info, at: .now)
                    }
                }
            }
        }
    }

    func client(_ node: String) -> IProtoClient? { state.withLock { $0.entries[node]?.client } }

    func isAlive(_ node: String) -> Bool {
        state.withLock { $0.entries[node].map { alive($0) } ?? false }
    }

    private func alive(_ entry: Entry) -> Bool { entry.lastSeen != nil && !entry.probeFailed }

    /// Chooses nodes for a new file's parts and reserves `partBytes` on each, atomically
    /// with respect to other uploads.
    func place(parts: Int, partBytes: Int64, file: String) throws(GatewayError) -> [String] {
        let result: Result<[String], PlacementError> = state.withLock { state in
            do throws(PlacementError) {
                let chosen = try FilePlacement.choose(parts: parts, partBytes: partBytes, file: file, among: loads(state))
                state.reservations.reserve(partBytes, on: chosen)
                return .success(chosen)
            } catch {
                return .failure(error)
            }
        }
        do { return try result.get() } catch { throw GatewayError(error.kind == .noRoom ? .insufficientStorage : .serviceUnavailable, error.description) }
    }

    func reserve(_ bytes: Int64, on nodes: [String]) { state.withLock { $0.reservations.reserve(bytes, on: nodes) } }
    func release(_ bytes: Int64, on nodes: [String]) { state.withLock { $0.reservations.release(bytes, on: nodes) } }

    /// Counts committed parts on their nodes (and, with `removing`, parts that stopped being live).
    func committed(_ parts: [PartRecord], removing old: [PartRecord] = []) {
        state.withLock { state in
            state.localChanges += 1
            for part in parts { state.liveBytes[part.node, default: 0] += part.length }
            for part in old { state.liveBytes[part.node, default: 0] -= part.length }
        }
    }

    func loads() -> [NodeLoad] { state.withLock { loads($0) } }

    private func loads(_ state: State) -> [NodeLoad] {
        state.entries.values.map { entry in
            NodeLoad(
                id: entry.record.id, capacityBytes: entry.capacityBytes, usedBytes: max(state.liveBytes[entry.record.id, default: 0], 0),
                reservedBytes: state.reservations[entry.record.id], alive: alive(entry))
        }
    }

    /// Every node, in the order they joined.
    public func statuses() -> [Status] {
        state.withLock { state in
            state.entries.values.map { entry in
                Status(
                    id: entry.record.id, address: entry.record.address, joined: entry.record.joined, capacityBytes: entry.capacityBytes,
                    usedBytes: entry.usedBytes, liveBytes: state.liveBytes[entry.record.id, default: 0],
                    reservedBytes: state.reservations[entry.record.id], parts: entry.parts, readOnlyVolumes: entry.readOnlyVolumes,
                    alive: alive(entry), lastSeen: entry.lastSeen)
            }.sorted { ($0.joined, $0.id) < ($1.joined, $1.id) }
        }
    }

    func closeAll() {
        state.withLock { state in for entry in state.entries.values { entry.close() } }
    }
}
