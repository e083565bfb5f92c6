import Durability
import ErasureCoding
import Dispatch
import Foundation
import IProto
import Logging
import Synchronization
import VolumeAPI
import VolumeStore

/// A file-store node: the Volume API (volume.iproto-api) over a ``VolumeStore``.
///
/// Writes (chunks, seals, deletes) are checked by their handler and staged per
/// worker; the worker's reply barrier appends everything its batch staged in
/// one synced append, before any reply of the batch leaves, so concurrent
/// uploads share fsyncs. If the append fails, every reply of the batch is
/// vol_cannot_persist instead: nothing is acknowledged that is not durable.
public final class VolumeNode: VolumeService, Sendable {
    public let configuration: VolumeNodeConfiguration
    public let id: String
    public let capacityBytes: Int
    let store: VolumeStore
    private let logger: Logger
    private let metrics = VolumeMetrics()
    private let staged: PerWorker<[VolumeRecord]>
    /// Bytes staged but not yet appended, counted against the capacity.
    private let stagedBytes = Atomic<Int>(0)
    private let address = Mutex<String>("")
    private let loops = Mutex<[Task<Void, Never>]>([])
    /// Compaction reads and writes whole volumes with blocking calls: on a queue of
    /// its own, not on the threads that run Swift tasks.
    private let compactionQueue = DispatchQueue(label: "iproto-volumed.compaction")
    /// Volumes whose compaction failed (a damaged record, a full disk): not tried again until a restart.
    private let failedCompactions = Mutex<Set<UInt32>>([])

    public static var metricHelp: [String: String] { VolumeMetrics.help }

    /// Opens the node's directory: its id (made on first start) and its volumes,
    /// recovered; checks the erasure coding the gateway relies on (a node never
    /// codes, but an operator learns of a broken libisal at the first process).
    public init(configuration: VolumeNodeConfiguration, workers: Int, logger: Logger) throws(StartFailure) {
        let configuration = try configuration.validated()
        self.configuration = configuration
        self.logger = logger
        staged = PerWorker(workers: workers) { [] }
        let directory = configuration.dataDirectory
        do throws(FileSystemError) {
            try DurableFile.makeDirectory(directory)
            id = try Self.nodeID(in: directory)
        } catch {
            throw .data("cannot use --data-dir \(directory): \(error)")
        }
        do {
            store = try VolumeStore(directory: directory + "/volumes", volumeBytes: configuration.volumeBytes)
        } catch {
            throw .data("cannot open the volumes in \(directory)/volumes: \(error)")
        }
        for (volume, reason) in store.readOnlyVolumes {
            logger.error("volume is read-only", metadata: ["volume": "\(volume)", "reason": "\(reason)"])
        }
        if let capacity = configuration.capacityBytes {
            capacityBytes = capacity
        } else {
            do {
                capacityBytes = try DurableFile.availableBytes(at: directory) + store.usage.usedBytes
            } catch {
                throw .data("cannot measure the free space of \(directory): \(error); give --capacity")
            }
        }
        publishMetrics()
    }

    /// The node's id: made once, kept in `node-id`, so that the gateway knows a restarted node at a new address.
    private static func nodeID(in directory: String) throws(FileSystemError) -> String {
        let path = directory + "/node-id"
        if let bytes = try DurableFile.read(path) {
            let id = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty { return id }
        }
        let id = UUID().uuidString.lowercased()
        let file = try DurableFile.create(path + ".tmp")
        try file.write(Array((id + "\n").utf8))
        try file.sync()
        try file.rename(to: path)
        try DurableFile.syncDirectory(directory)
        return id
    }

    public func handlers() -> Handlers {
        var handlers = Handlers()
        handlers.beforeReplies { worker throws(IProtoError) in try self.commit(worker: worker) }
        handlers.registerVolumeService(self)
        return handlers
    }

    // MARK: writes

    public func putChunk(part: UInt, chunk: Int, checksum: Int, data: [UInt8]) throws(IProtoError) {
        guard data.count <= configuration.maxChunkBytes else {
            throw IProtoError(.outOfRange, "a chunk of \(data.count) bytes exceeds --max-chunk \(configuration.maxChunkBytes)")
        }
        guard Checksum.crc32(data) == UInt32(checksum) else {
            metrics.checksumMismatches.increment()
            throw IProtoError(.volChecksumMismatch, "chunk \(chunk) of part \(hex(part)): its bytes do not match checksum \(hex(UInt(checksum)))")
        }
        let id = PartID(UInt64(part))
        if store.isDeleted(id) { throw IProtoError(.volConflict, "part \(id) is deleted") }
        if let stored = store.part(id) {
            if stored.sealed != nil { throw IProtoError(.volConflict, "part \(id) is sealed") }
            if stored.chunkLengths[UInt32(chunk)] != nil {
                // A retry after a lost reply: the same bytes are a no-op, other bytes a conflict.
                let existing = try read(id, chunk: UInt32(chunk)).data
                guard existing == data else {
                    throw IProtoError(.volConflict, "chunk \(chunk) of part \(id) is stored with other bytes")
                }
                return
            }
        }
        let size = VolumeFormat.recordSize(dataLength: data.count)
        let used = store.usage.usedBytes
        let pending = stagedBytes.add(size, ordering: .relaxed).newValue
        guard used + pending <= capacityBytes else {
            stagedBytes.subtract(size, ordering: .relaxed)
            metrics.fullRefusals.increment()
            throw IProtoError(.volFull, "node \(id) is full: \(used) of \(capacityBytes) bytes used, a \(data.count)-byte chunk does not fit")
        }
        stage(VolumeRecord(part: id, chunk: UInt32(chunk), kind: .chunk, data: data))
    }

    public func sealPart(part: UInt, chunks: Int, length: UInt) throws(IProtoError) {
        if let seal = try sealRecord(PartID(UInt64(part)), chunks: chunks, length: length) { stage(seal) }
    }

    /// A small file's part is one chunk: its chunk and its seal in one synced append
    /// halve the fsyncs and the round trips of its upload.
    public func putLastChunk(part: UInt, chunk: Int, checksum: Int, data: [UInt8], length: UInt) throws(IProtoError) {
        guard chunk < Int(UInt32.max) else { throw IProtoError(.outOfRange, "chunk \(chunk) cannot be a part's last: a part holds at most \(UInt32.max) chunks") }
        let id = PartID(UInt64(part))
        if let stored = store.part(id), stored.sealed != nil {
            // A retry after a lost reply: the same chunk and figures are a no-op.
            _ = try sealRecord(id, chunks: chunk + 1, length: length)
            guard stored.chunkLengths[UInt32(chunk)] != nil, try read(id, chunk: UInt32(chunk)).data == data else {
                throw IProtoError(.volConflict, "part \(id) is sealed without these bytes as its chunk \(chunk)")
            }
            return
        }
        // Checked before the chunk is staged: a refused seal leaves nothing written.
        let seal = try sealRecord(id, chunks: chunk + 1, length: length, adding: (UInt32(chunk), data.count))
        try putChunk(part: part, chunk: chunk, checksum: checksum, data: data)
        if let seal { stage(seal) }
    }

    /// The seal of part `id` as `chunks` chunks of `length` bytes in all, once the stored
    /// chunks (with `adding`, a chunk about to be staged with the seal) are exactly those;
    /// nil when the part is already sealed so.
    private func sealRecord(_ id: PartID, chunks: Int, length: UInt, adding: (chunk: UInt32, bytes: Int)? = nil) throws(IProtoError) -> VolumeRecord? {
        if store.isDeleted(id) { throw IProtoError(.volConflict, "part \(id) is deleted") }
        let stored = store.part(id) ?? VolumeStore.Part()
        if let sealed = stored.sealed {
            guard sealed.chunks == UInt32(chunks), sealed.length == UInt64(length) else {
                throw IProtoError(.volConflict, "part \(id) is sealed with \(sealed.chunks) chunks and \(sealed.length) bytes")
            }
            return nil
        }
        var lengths = stored.chunkLengths
        if let adding, lengths[adding.chunk] == nil { lengths[adding.chunk] = UInt32(adding.bytes) }
        if let missing = (0..<UInt32(chunks)).first(where: { lengths[$0] == nil }) {
            throw IProtoError(.volNotFound, "part \(id) has no chunk \(missing) of the \(chunks) to seal")
        }
        if let extra = lengths.keys.first(where: { $0 >= UInt32(chunks) }) {
            throw IProtoError(.volConflict, "part \(id) holds chunk \(extra), past the \(chunks) to seal")
        }
        let total = lengths.values.reduce(UInt64(0)) { $0 + UInt64($1) }
        guard total == UInt64(length) else {
            throw IProtoError(.volConflict, "part \(id) holds \(total) bytes in its \(chunks) chunks, not \(length)")
        }
        var data: [UInt8] = []
        LittleEndian.append(UInt64(length), size: 8, to: &data)
        return VolumeRecord(part: id, chunk: UInt32(chunks), kind: .seal, data: data)
    }

    public func deletePart(part: UInt) throws(IProtoError) {
        let id = PartID(UInt64(part))
        guard store.part(id) != nil, !store.isDeleted(id) else { return }
        stage(VolumeRecord(part: id, chunk: 0, kind: .tombstone, data: []))
    }

    private func stage(_ record: VolumeRecord) {
        guard let worker = Handlers.currentWorker else {
            // Called outside a server worker (tests): append at once.
            _ = try? append([record])
            return
        }
        staged.withLock(worker) { $0.append(record) }
    }

    /// The reply barrier: appends what this worker's handlers staged, synced, in one go.
    func commit(worker: Int) throws(IProtoError) {
        let records = staged.withLock(worker) { staged in
            defer { staged.removeAll(keepingCapacity: true) }
            return staged
        }
        guard !records.isEmpty else { return }
        try append(records)
    }

    private func append(_ records: [VolumeRecord]) throws(IProtoError) {
        let chunkBytes = records.lazy.filter { $0.kind == .chunk }.reduce(0) { $0 + $1.data.count }
        defer {
            stagedBytes.subtract(records.lazy.filter { $0.kind == .chunk }.reduce(0) { $0 + VolumeFormat.recordSize(dataLength: $1.data.count) }, ordering: .relaxed)
        }
        do {
            try store.append(records)
        } catch {
            metrics.commitFailures.increment()
            logger.error("cannot make a batch durable", metadata: ["records": "\(records.count)", "error": "\(error)"])
            throw IProtoError(.volCannotPersist, "node \(id) could not make the write durable: \(error)")
        }
        metrics.commits.increment()
        metrics.commitRecords.increment(by: records.count)
        metrics.chunksWritten.increment(by: records.lazy.filter { $0.kind == .chunk }.count)
        metrics.chunkBytesWritten.increment(by: chunkBytes)
    }

    // MARK: reads

    public func getChunk(part: UInt, chunk: Int) throws(IProtoError) -> (checksum: UInt, data: [UInt8]) {
        // The checksum is the one the record stores, which the read has just checked the bytes against.
        let (data, checksum) = try read(PartID(UInt64(part)), chunk: UInt32(chunk))
        metrics.chunksRead.increment()
        return (UInt(checksum), data)
    }

    private func read(_ part: PartID, chunk: UInt32) throws(IProtoError) -> (data: [UInt8], checksum: UInt32) {
        do {
            return try store.readChecked(part, chunk: chunk)
        } catch {
            switch error.kind {
            case .notFound: throw IProtoError(.volNotFound, error.description)
            case .corrupt:
                metrics.corruptReads.increment()
                logger.error("a stored chunk fails its checksum", metadata: ["part": "\(part)", "chunk": "\(chunk)", "error": "\(error)"])
                throw IProtoError(.volCorrupt, error.description)
            case .io, .invalid: throw IProtoError(.volCannotPersist, "cannot read chunk \(chunk) of part \(part): \(error)")
            }
        }
    }

    public func partInfo(part: UInt) throws(IProtoError) -> (chunks: UInt, length: UInt, sealed: Bool) {
        let id = PartID(UInt64(part))
        guard let stored = store.part(id) else { throw IProtoError(.volNotFound, "part \(id) is not on this node") }
        let length = stored.chunkLengths.values.reduce(UInt(0)) { $0 + UInt($1) }
        return (UInt(stored.chunkLengths.count), length, stored.sealed != nil)
    }

    public func nodeInfo() throws(IProtoError) -> (node: String, capacityBytes: UInt, usedBytes: UInt, parts: UInt, readOnlyVolumes: UInt) {
        let usage = store.usage
        return (id, UInt(capacityBytes), UInt(usage.usedBytes), UInt(usage.parts), UInt(store.readOnlyVolumes.count))
    }

    public func listParts(after: UInt, limit: Int) throws(IProtoError) -> (parts: [UInt], sealed: [Bool]) {
        let page = store.parts(after: after == 0 ? nil : PartID(UInt64(after)), limit: limit)
        return (page.map { UInt($0.part.rawValue) }, page.map(\.sealed))
    }

    // MARK: loops

    /// Starts the loops: metrics, and registration at the gateway when one is configured.
    public func start(listeningOn listenAddress: String) {
        let advertised = configuration.advertise ?? listenAddress
        address.withLock { $0 = advertised }
        var tasks = [Task { await every(.seconds(1)) { self.publishMetrics() } }]
        if configuration.compactionInterval > .zero {
            tasks.append(Task {
                await every(self.configuration.compactionInterval) {
                    await withCheckedContinuation { done in
                        self.compactionQueue.async {
                            self.compactVolumes()
                            done.resume()
                        }
                    }
                }
            })
        }
        if let gateway = configuration.gatewayURL {
            let registration = Registration(gatewayURL: gateway, address: advertised, node: id)
            let interval = configuration.registrationInterval
            tasks.append(Task {
                // Logged when it changes: the first success, and each start of a run of failures.
                var registered: Bool?
                while !Task.isCancelled {
                    do {
                        try await registration.register()
                        if registered != true { self.logger.info("registered at the gateway", metadata: ["gateway": "\(gateway)", "address": "\(advertised)"]) }
                        registered = true
                    } catch {
                        self.metrics.registrationFailures.increment()
                        if registered != false { self.logger.warning("cannot register at the gateway; retrying", metadata: ["gateway": "\(gateway)", "error": "\(error)"]) }
                        registered = false
                    }
                    try? await Task.sleep(for: interval)
                }
            })
        }
        loops.withLock { $0 = tasks }
    }

    public func stop() async {
        let tasks = loops.withLock { loops in
            defer { loops = [] }
            return loops
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    // MARK: compaction

    /// Compacts, one after another, the volumes ``CompactionPolicy`` picks; returns what it did.
    @discardableResult
    func compactVolumes() -> [VolumeStore.Compaction] {
        let failed = failedCompactions.withLock { $0 }
        let picks = CompactionPolicy.candidates(store.volumes, garbageRatio: configuration.compactionGarbageRatio,
                                                volumeBytes: configuration.volumeBytes).filter { !failed.contains($0) }
        var done: [VolumeStore.Compaction] = []
        for number in picks {
            let started = ContinuousClock.now
            do {
                let compaction = try store.compact(number)
                done.append(compaction)
                metrics.compactions.increment()
                metrics.compactionReclaimedBytes.increment(by: compaction.reclaimedBytes)
                logger.info("volume compacted", metadata: [
                    "volume": "\(number)", "into": "\(compaction.into.map(String.init) ?? "none")",
                    "reclaimed_bytes": "\(compaction.reclaimedBytes)", "seconds": "\((ContinuousClock.now - started) / .seconds(1))",
                ])
            } catch {
                failedCompactions.withLock { _ = $0.insert(number) }
                metrics.compactionFailures.increment()
                logger.error("volume compaction failed; the volume is kept as it is and not tried again until a restart",
                             metadata: ["volume": "\(number)", "error": "\(error)"])
            }
        }
        publishMetrics()
        return done
    }

    func publishMetrics() {
        let usage = store.usage
        metrics.capacityBytes.record(capacityBytes)
        metrics.usedBytes.record(usage.usedBytes)
        metrics.parts.record(usage.parts)
        metrics.readOnlyVolumes.record(store.readOnlyVolumes.count)
        metrics.garbageBytes.record(store.volumes.reduce(0) { $0 + $1.garbageBytes })
    }
}

func hex(_ value: UInt) -> String { "0x" + String(value, radix: 16) }
