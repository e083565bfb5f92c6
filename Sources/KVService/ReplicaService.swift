import IProto
import KVAPI
import KVReplication
import KVStore
import Synchronization

/// A node's replica role: it keeps the records the leader (or a repairing
/// peer) sends, durably before it answers, and refuses writes from a leader
/// older than the newest it has seen (the epoch fence).
///
/// Writes are staged per worker by the handler and applied in that worker's
/// reply barrier, in one SQLite transaction for the whole batch (one fsync),
/// before any reply of the batch leaves; if the transaction fails, every
/// reply of the batch is an error instead.
final class ReplicaService: KVPeerService {
    let node: KVNode
    private struct Batch: Sendable {
        var epoch: Epoch
        var records: [ReplicaRecord]
    }

    private let staged: PerWorker<[Batch]>

    init(node: KVNode, workers: Int) {
        self.node = node
        staged = PerWorker(workers: workers) { [] }
    }

    func replicaWrite(epoch: UInt, keys: [String], versions: [UInt], kinds: [UInt], values: [[UInt8]?]) throws(IProtoError) {
        let count = keys.count
        guard versions.count == count, kinds.count == count, values.count == count else {
            throw IProtoError(.badArguments, "keys, versions, kinds and values must have the same length")
        }
        let epoch = Epoch(UInt64(epoch))
        try node.checkEpoch(epoch)
        var records: [ReplicaRecord] = []
        records.reserveCapacity(count)
        for index in 0..<count {
            guard let kind = ValueKind(rawValue: UInt8(truncatingIfNeeded: kinds[index])), kinds[index] <= 2 else {
                throw IProtoError(.badArguments, "kind \(kinds[index]) of key \(index + 1) is not 0 (str), 1 (bin) or 2 (tombstone)")
            }
            let key: KVKey
            do { key = try KVKey(keys[index]) } catch { throw IProtoError(.badArguments, error.description) }
            records.append(ReplicaRecord(key: key.text, version: Version(rawValue: UInt64(versions[index])), kind: kind, value: values[index] ?? []))
        }
        guard let worker = Handlers.currentWorker else {
            // Called outside a server worker (tests): apply at once.
            try node.applyDurably(records, epoch: epoch)
            return
        }
        staged.withLock(worker) { $0.append(Batch(epoch: epoch, records: records)) }
    }

    /// The reply barrier: applies what this worker's handlers staged.
    func commit(worker: Int) throws(IProtoError) {
        let batch = staged.withLock(worker) { staged in
            defer { staged.removeAll(keepingCapacity: true) }
            return staged
        }
        // One transaction per epoch, oldest first: each is checked against the
        // newest epoch persisted so far, so an old leader's write that arrives in
        // the same batch as its successor's first call is refused, not let through.
        var byEpoch: [Epoch: [ReplicaRecord]] = [:]
        for staged in batch { byEpoch[staged.epoch, default: []].append(contentsOf: staged.records) }
        for epoch in byEpoch.keys.sorted() { try node.applyDurably(byEpoch[epoch]!, epoch: epoch) }
    }

    func replicaRead(epoch: UInt, key: String) throws(IProtoError) -> (version: UInt, kind: UInt, value: [UInt8]?) {
        try node.checkEpoch(Epoch(UInt64(epoch)))
        guard node.isReady else {
            throw IProtoError(.kvReplicaNotReady, "replica \(node.member.address) is catching up after its start")
        }
        let record = try node.readLocal(key)
        guard let record else { return (0, UInt(ValueKind.tombstone.rawValue), nil) }
        return (UInt(record.version.rawValue), UInt(record.kind.rawValue), record.kind == .tombstone ? nil : record.value)
    }

    func peerPing(node peer: String, address: String, epoch: UInt) throws(IProtoError) -> (
        node: String, address: String, highestEpoch: UInt, repairedThrough: UInt
    ) {
        node.heard(from: NodeID(peer))
        if epoch > 0 { try node.checkEpoch(Epoch(UInt64(epoch)), refusingOlder: false) }
        return (node.member.id, node.member.address, UInt(node.highestEpoch.rawValue), UInt(node.repairedThrough))
    }

    func clusterInfo() throws(IProtoError) -> (cluster: String, etcd: [String], replicationFactor: UInt) {
        (node.configuration.cluster, node.etcdEndpoints, UInt(node.replicationFactor))
    }

    func replicaScan(after: String, limit: UInt) throws(IProtoError) -> (keys: [String], versions: [UInt]) {
        guard limit >= 1, limit <= 10_000 else { throw IProtoError(.outOfRange, "limit \(limit) is out of range 1...10000") }
        let entries = try node.storeCall { store throws(StoreError) in try store.scan(after: after, limit: Int(limit)) }
        return (entries.map(\.key), entries.map { UInt($0.version.rawValue) })
    }

    func repaired(keys: [String]) throws(IProtoError) {
        node.repairedElsewhere(keys)
    }

    func replicaFetch(keys: [String]) throws(IProtoError) -> (keys: [String], versions: [UInt], kinds: [UInt], values: [[UInt8]?]) {
        var result: (keys: [String], versions: [UInt], kinds: [UInt], values: [[UInt8]?]) = ([], [], [], [])
        var bytes = 0
        for key in keys {
            guard let record = try node.readLocal(key) else { continue }
            // In request order, within --peer-call-bytes (one record at least): the
            // caller asks again for the keys after the last one answered.
            bytes += record.messageBytes
            if !result.keys.isEmpty, bytes > node.configuration.peerCallBytes { break }
            result.keys.append(record.key)
            result.versions.append(UInt(record.version.rawValue))
            result.kinds.append(UInt(record.kind.rawValue))
            result.values.append(record.kind == .tombstone ? nil : record.value)
        }
        return result
    }
}
