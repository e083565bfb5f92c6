import Durability
import ErasureCoding
import FileMetadata
import FilePlacement
import Foundation
import IProto
import IProtoClient
import Logging
import Metrics
import Synchronization
import VolumeAPI

/// Rewrites parts onto other nodes, online: `rebalance` moves parts from the
/// fullest nodes to the emptiest until the spread is within its target;
/// `repair` rebuilds every part of a lost node onto the others. Both copy a
/// part chunk by chunk onto its new node (rebuilding a chunk from the file's
/// other parts where its old copy cannot be read), seal it there, then switch
/// the file's layout to it in one metadata transaction; the old copy becomes
/// garbage. GETs keep working throughout: a read that still holds the old
/// layout finds the old copy, or rebuilds it from parity once it is gone.
public final class PartMover: Sendable {
    /// What an operation is doing, for `GET /admin/rebalance` and `/admin/repair`.
    public struct Progress: Sendable, Encodable {
        public var operation: String
        public var running = false
        public var started: Double?
        public var finished: Double?
        public var parts_moved = 0
        public var bytes_moved: Int64 = 0
        public var parts_left: Int?
        public var spread: Double?
        public var target: Double?
        public var node: String?
        public var error: String?
        public var failed_parts = 0
    }

    private let store: FileStore
    private let progress: Mutex<[String: Progress]>
    private let tasks = Mutex<[String: Task<Void, Never>]>([:])
    private let moves = Counter(label: "iproto_files_moved_parts_total")
    private let movedBytes = Counter(label: "iproto_files_moved_bytes_total")

    static let help: [String: String] = [
        "iproto_files_moved_parts_total": "Parts rewritten onto another node by rebalance or repair",
        "iproto_files_moved_bytes_total": "Bytes of those parts",
    ]

    init(store: FileStore) {
        self.store = store
        progress = Mutex(["rebalance": Progress(operation: "rebalance"), "repair": Progress(operation: "repair")])
    }

    public func status(_ operation: String) -> Progress? { progress.withLock { $0[operation] } }

    /// Starts an online rebalance towards `target` (max fill ÷ min fill); false when one runs.
    public func startRebalance(target: Double) -> Bool {
        start("rebalance", configure: { $0.target = target }) { [self] in try await rebalance(target: target) }
    }

    /// Starts rebuilding every part of `node` (a node that is lost) onto the others; false when a repair runs.
    public func startRepair(node: String) -> Bool {
        start("repair", configure: { $0.node = node }) { [self] in try await repair(node: node) }
    }

    private func start(_ operation: String, configure: (inout Progress) -> Void, _ body: @escaping @Sendable () async throws -> Void) -> Bool {
        let started = progress.withLock { progress -> Bool in
            guard progress[operation]?.running != true else { return false }
            var fresh = Progress(operation: operation)
            fresh.running = true
            fresh.started = Date().timeIntervalSince1970
            configure(&fresh)
            progress[operation] = fresh
            return true
        }
        guard started else { return false }
        let task = Task {
            do {
                try await body()
            } catch {
                self.update(operation) { $0.error = "\(error)" }
                self.store.logger.error("\(operation) stopped", metadata: ["error": "\(error)"])
            }
            self.update(operation) {
                $0.running = false
                $0.finished = Date().timeIntervalSince1970
            }
        }
        tasks.withLock { $0[operation] = task }
        return true
    }

    private func update(_ operation: String, _ change: (inout Progress) -> Void) {
        progress.withLock { progress in change(&progress[operation, default: Progress(operation: operation)]) }
    }

    /// Waits for a running operation (tests, shutdown).
    public func wait(_ operation: String) async { await tasks.withLock { $0[operation] }?.value }

    // MARK: rebalance

    private func rebalance(target: Double) async throws {
        store.logger.info("rebalance started", metadata: ["target": "\(target)"])
        while !Task.isCancelled {
            let loads = store.nodes.loads().filter(\.alive)
            update("rebalance") { $0.spread = FilePlacement.liveSpread(loads) }
            var parts: [String: [PlacedPart]] = [:]
            for node in loads {
                parts[node.id] = try await allLiveParts(on: node.id).map { PlacedPart(part: $0.partID, file: $0.fileID, bytes: $0.length) }
            }
            guard let move = FilePlacement.nextMove(nodes: loads, parts: parts, target: target) else { break }
            let record = try await allLiveParts(on: move.from).first { $0.partID == move.part.part }
            guard let record, let file = try await store.metadata.file(id: record.fileID) else { continue }
            if try await rewrite(record, of: file, to: move.to) {
                update("rebalance") {
                    $0.parts_moved += 1
                    $0.bytes_moved += record.length
                }
            } else {
                update("rebalance") { $0.failed_parts += 1 }
                // A move that failed (a node went away) is not retried at once: the next probe may change the plan.
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        update("rebalance") { $0.spread = FilePlacement.liveSpread(self.store.nodes.loads()) }
        store.logger.info("rebalance finished", metadata: ["spread": "\(FilePlacement.liveSpread(store.nodes.loads()))"])
    }

    private func allLiveParts(on node: String) async throws -> [PartRecord] {
        var all: [PartRecord] = []
        var after: UInt64 = 0
        while true {
            let page = try await store.metadata.liveParts(on: node, after: after, limit: 10_000)
            all += page
            guard let last = page.last, page.count == 10_000 else { return all }
            after = last.partID
        }
    }

    // MARK: repair

    private func repair(node: String) async throws {
        let parts = try await allLiveParts(on: node)
        store.logger.info("repair started", metadata: ["node": "\(node)", "parts": "\(parts.count)"])
        update("repair") { $0.parts_left = parts.count }
        for (done, part) in parts.enumerated() {
            if Task.isCancelled { break }
            guard let file = try await store.metadata.file(id: part.fileID) else { continue }
            let holders = Set(file.parts.map(\.node))
            let loads = store.nodes.loads().filter { $0.alive && !holders.contains($0.id) }
            guard let destination = try? FilePlacement.choose(parts: 1, partBytes: part.length, file: file.name, among: loads).first else {
                update("repair") { $0.failed_parts += 1 }
                store.logger.error("no node can take a part being repaired", metadata: ["part": "\(part.partID)", "file": "\(file.name)"])
                continue
            }
            let moved = try await rewrite(part, of: file, to: destination, rebuild: true)
            update("repair") {
                if moved {
                    $0.parts_moved += 1
                    $0.bytes_moved += part.length
                } else {
                    $0.failed_parts += 1
                }
                $0.parts_left = parts.count - done - 1
            }
        }
        store.logger.info("repair finished", metadata: ["node": "\(node)"])
    }

    // MARK: one part

    /// Copies `part` of `file` onto `destination` (a node holding no part of the
    /// file), chunk by chunk, reading each from the part's node or, with
    /// `rebuild` or when that fails, rebuilding it from the other parts; seals
    /// it, and switches the layout. Returns false when it could not (the copy is
    /// then garbage).
    func rewrite(_ part: PartRecord, of file: FileRecord, to destination: String, rebuild: Bool = false) async throws -> Bool {
        guard let target = store.nodes.client(destination) else { return false }
        let layout = try StripeLayout(parityParts: file.parityParts, shardBytes: file.shardBytes)
        let code = try ReedSolomon(dataShards: StripeLayout.dataParts, parityShards: file.parityParts)
        let newPart = try await store.metadata.beginUpload(
            fileID: file.fileID, [PendingPart(index: part.index, node: destination, length: part.length)])[0]
        store.nodes.reserve(part.length, on: [destination])
        defer { store.nodes.release(part.length, on: [destination]) }
        let blocks = layout.blockCount(fileSize: file.size)
        do {
            for block in 0..<blocks {
                let chunk = try await readChunk(part, block: block, of: file, layout: layout, code: code, rebuild: rebuild)
                let cost = 2 * chunk.count
                await store.budget.acquire(cost)
                defer { store.budget.release(cost) }
                try await target.putChunk(part: UInt(newPart.partID), chunk: block, checksum: Int(Checksum.crc32(chunk)), data: chunk)
            }
            try await target.sealPart(part: UInt(newPart.partID), chunks: blocks, length: UInt(part.length))
        } catch {
            try? await store.metadata.abortUpload(fileID: file.fileID)
            store.logger.warning("a part could not be rewritten", metadata: ["part": "\(part.partID)", "to": "\(destination)", "error": "\(error)"])
            return false
        }
        guard try await store.metadata.movePart(part, to: destination, newPartID: newPart.partID) else {
            // The file was deleted or replaced meanwhile: the copy is garbage.
            try? await store.metadata.abortUpload(fileID: file.fileID)
            return false
        }
        store.nodes.committed([newPart], removing: [part])
        moves.increment()
        movedBytes.increment(by: Int(part.length))
        store.logger.info("part moved", metadata: ["file": "\(file.name)", "index": "\(part.index)", "from": "\(part.node)", "to": "\(destination)"])
        return true
    }

    /// Chunk `block` of `part`: read from its node, or rebuilt from the file's other parts.
    private func readChunk(_ part: PartRecord, block: Int, of file: FileRecord, layout: StripeLayout, code: ReedSolomon, rebuild: Bool) async throws -> [UInt8] {
        let expected = layout.chunkLength(part: part.index, block: block, fileSize: file.size)
        if !rebuild, store.nodes.isAlive(part.node), let client = store.nodes.client(part.node),
            let reply = try? await client.getChunk(part: UInt(part.partID), chunk: block),
            reply.data.count == expected, UInt(Checksum.crc32(reply.data)) == reply.checksum
        {
            return reply.data
        }
        let others = (0..<layout.parts).filter { $0 != part.index }
        let fetched = await store.fetchChunks(others, block: block, of: file, layout: layout)
        var chunks = [[UInt8]?](repeating: nil, count: layout.parts)
        for (position, index) in others.enumerated() { chunks[index] = fetched[position].map(Array.init) }
        return try FileStore.rebuild(chunks, block: layout.block(block, fileSize: file.size), code: code)[part.index]
    }
}
