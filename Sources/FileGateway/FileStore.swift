import Durability
import ErasureCoding
import FileMetadata
import FilePlacement
import Foundation
import IProto
import IProtoClient
import Logging
import Metrics
import NIOCore
import VolumeAPI

/// The file store's logic behind the HTTP routes: uploads cut into parts and
/// sent to their nodes block by block, downloads glued back (rebuilt from
/// parity where a part cannot be read), deletes, and the reclaiming of parts
/// no file uses any more. docs/file-store.md describes the rules it keeps.
public final class FileStore: Sendable {
    public let configuration: FileGatewayConfiguration
    public let nodes: StorageNodes
    let metadata: any FileMetadataStore
    let layout: StripeLayout
    let code: ReedSolomon
    let metrics = GatewayMetrics()
    let budget: TransferBudget
    let logger: Logger

    public static var metricHelp: [String: String] { GatewayMetrics.help.merging(PartMover.help) { first, _ in first } }

    public init(configuration: FileGatewayConfiguration, metadata: any FileMetadataStore, logger: Logger) async throws(StartFailure) {
        let configuration = try configuration.validated()
        self.configuration = configuration
        self.metadata = metadata
        self.logger = logger
        let metrics = self.metrics
        budget = TransferBudget(bytes: configuration.transferMemoryBytes) { metrics.transferWaits.increment() }
        do {
            layout = try StripeLayout(parityParts: configuration.parityParts, shardBytes: configuration.shardBytes)
            code = try ReedSolomon(dataShards: StripeLayout.dataParts, parityShards: configuration.parityParts)
            // Any parity count a stored file may have been written with is checked, not only the current one.
            for parity in 0...StripeLayout.maxParityParts { try ReedSolomon(dataShards: StripeLayout.dataParts, parityShards: parity).selfTest() }
        } catch {
            throw .data("erasure coding self-test failed: \(error)")
        }
        nodes = StorageNodes(
            metadata: metadata, callTimeout: configuration.callTimeout, livenessTimeout: configuration.livenessTimeout,
            maxChunkBytes: configuration.shardBytes, logger: logger)
        do {
            try await nodes.load()
            let abandoned = try await metadata.abandonPendingUploads()
            if abandoned > 0 { logger.notice("parts of uploads cut off by the last stop will be reclaimed", metadata: ["parts": "\(abandoned)"]) }
        } catch {
            throw .data("cannot read the metadata: \(error)")
        }
    }

    // MARK: uploads

    public struct Stored: Sendable {
        public var file: FileRecord
        public var replaced: Bool
    }

    /// Stores `body` under `name`: cuts it into blocks, sends each block's shards
    /// and parity to the file's nodes (`blocksInFlight` blocks at a time), seals
    /// every part, then commits the file: visible at once, or (on any failure)
    /// not at all, its parts reclaimed.
    public func upload<Body: AsyncSequence>(name: FileName, contentLength: Int64?, body: Body) async throws(GatewayError) -> Stored
    where Body.Element == ByteBuffer {
        do {
            return try await store(name: name, contentLength: contentLength, body: body)
        } catch {
            metrics.uploadFailures.increment()
            logger.info("upload failed; nothing is visible", metadata: ["name": "\(name)", "error": "\(error)"])
            throw error
        }
    }

    private func store<Body: AsyncSequence>(name: FileName, contentLength: Int64?, body: Body) async throws(GatewayError) -> Stored
    where Body.Element == ByteBuffer {
        let started = ContinuousClock.now
        if let contentLength, contentLength > configuration.maxFileBytes {
            metrics.tooLarge.increment()
            throw GatewayError(.payloadTooLarge, "a \(contentLength)-byte file exceeds --max-file-size \(configuration.maxFileBytes)")
        }
        // A chunked upload's size is unknown: reserve one block now and more as blocks arrive.
        let reservedSize = contentLength ?? Int64(layout.blockBytes)
        let perPart = layout.partLength(layout.parts - 1, fileSize: reservedSize)
        let placed = try nodes.place(parts: layout.parts, partBytes: perPart, file: name.text)
        let pending: [PartRecord]
        do {
            pending = try await metadata.beginUpload(
                fileID: nil, (0..<layout.parts).map { PendingPart(index: $0, node: placed[$0], length: layout.partLength($0, fileSize: reservedSize)) })
        } catch {
            nodes.release(perPart, on: placed)
            throw metadataFailure(error)
        }
        let fileID = pending[0].fileID
        var upload = UploadState(fileID: fileID, partIDs: pending.map(\.partID), nodes: placed, reservedPerPart: perPart)
        do throws(GatewayError) {
            let (size, checksum) = try await send(body, contentLength: contentLength, upload: &upload)
            let record = try await seal(upload, size: size, checksum: checksum, name: name)
            let replaced: FileRecord?
            do { replaced = try await metadata.commitUpload(record) } catch { throw metadataFailure(error) }
            nodes.release(upload.reservedPerPart, on: placed)
            nodes.committed(record.parts, removing: replaced?.parts ?? [])
            metrics.uploads.increment()
            metrics.uploadBytes.increment(by: Int(size))
            metrics.uploadSeconds.record((ContinuousClock.now - started) / .seconds(1))
            return Stored(file: record, replaced: replaced != nil)
        } catch {
            nodes.release(upload.reservedPerPart, on: placed)
            try? await metadata.abortUpload(fileID: fileID)
            throw error
        }
    }

    struct UploadState {
        let fileID: UInt64
        let partIDs: [UInt64]
        let nodes: [String]
        var reservedPerPart: Int64
    }

    /// Reads the body block by block and sends each; returns the size and the whole file's CRC-32.
    private func send<Body: AsyncSequence>(_ body: Body, contentLength: Int64?, upload: inout UploadState) async throws(GatewayError) -> (Int64, UInt32)
    where Body.Element == ByteBuffer {
        // The body goes straight into the block's data shards: a full block's shard i
        // is its bytes i × shardBytes ..< (i + 1) × shardBytes, sent and coded as it is.
        // With a Content-Length the last block's own shards are known too (a small file's
        // only block): it is cut as it arrives, not copied again once complete.
        var blockIndex = 0
        /// Where each data shard of block `blockIndex` ends, counted from the block's start.
        func shardEnds() -> [Int] {
            guard let contentLength, blockIndex == layout.blockCount(fileSize: contentLength) - 1 else {
                return (1...StripeLayout.dataParts).map { $0 * layout.shardBytes }
            }
            let shape = layout.block(blockIndex, fileSize: contentLength)
            return (0..<StripeLayout.dataParts).map { shape.shardRange($0).upperBound }
        }
        func freshShards(ending ends: [Int]) -> [[UInt8]] {
            let capacity = zip(ends, [0] + ends).map { $0 - $1 }.max()!
            return (0..<StripeLayout.dataParts).map { _ in
                var shard: [UInt8] = []
                shard.reserveCapacity(capacity)
                return shard
            }
        }
        var ends = shardEnds()
        var shards = freshShards(ending: ends)
        var filled = 0
        var size: Int64 = 0
        var checksum: UInt32 = 0
        var inFlight: [Task<Void, any Error>] = []
        let clients = try upload.nodes.map { node throws(GatewayError) -> IProtoClient in
            guard let client = nodes.client(node) else { throw GatewayError(.serviceUnavailable, "node \(node) is gone") }
            return client
        }
        func awaitInFlight() async throws(GatewayError) {
            for task in inFlight {
                do { try await task.value } catch { throw nodeFailure(error, during: "sending a block") }
            }
            inFlight = []
        }
        /// Sends a block; the last one seals the parts with its chunks, once every block
        /// before it is stored (a node seals only a part whose chunks it holds).
        func dispatch(_ shards: [[UInt8]], index: Int, last: Bool, upload: inout UploadState) async throws(GatewayError) {
            for shard in shards { checksum = Checksum.crc32(shard, 0..<shard.count, continuing: checksum) }
            // A chunked upload reserves as it goes: the part's bytes so far plus this block.
            let needed = Int64(index + 1) * Int64(layout.shardBytes)
            if needed > upload.reservedPerPart {
                nodes.reserve(needed - upload.reservedPerPart, on: upload.nodes)
                upload.reservedPerPart = needed
            }
            if last {
                try await awaitInFlight()
            } else if inFlight.count >= configuration.blocksInFlight {
                let oldest = inFlight.removeFirst()
                do { try await oldest.value } catch { throw nodeFailure(error, during: "sending a block") }
            }
            let partIDs = upload.partIDs
            let cost = blockCost(layout, length: shards.reduce(0) { $0 + $1.count })
            let partLengths = last ? (0..<layout.parts).map { layout.partLength($0, fileSize: size) } : nil
            await budget.acquire(cost)
            inFlight.append(Task {
                defer { self.budget.release(cost) }
                try await self.sendBlock(shards, index: index, partIDs: partIDs, clients: clients, sealing: partLengths)
            })
        }
        do {
            for try await buffer in body {
                var view = buffer.readableBytesView[...]
                size += Int64(view.count)
                if size > configuration.maxFileBytes {
                    metrics.tooLarge.increment()
                    throw GatewayError(.payloadTooLarge, "the body passed --max-file-size \(configuration.maxFileBytes)")
                }
                if let contentLength, size > contentLength {
                    throw GatewayError(.badRequest, "the body is longer than its Content-Length \(contentLength)")
                }
                while !view.isEmpty {
                    // A full block goes once a byte past it arrives: the block that ends the body goes last, sealing.
                    if filled == ends[ends.count - 1] {
                        try await dispatch(shards, index: blockIndex, last: false, upload: &upload)
                        blockIndex += 1
                        ends = shardEnds()
                        shards = freshShards(ending: ends)
                        filled = 0
                    }
                    let shard = ends.firstIndex { filled < $0 }!
                    let take = min(ends[shard] - filled, view.count)
                    shards[shard].append(contentsOf: view.prefix(take))
                    view = view.dropFirst(take)
                    filled += take
                }
            }
            if let contentLength, size != contentLength {
                throw GatewayError(.badRequest, "the body ended after \(size) of its Content-Length \(contentLength) bytes")
            }
            if filled > 0 { try await dispatch(shards, index: blockIndex, last: true, upload: &upload) }
            try await awaitInFlight()
            return (size, checksum)
        } catch {
            for task in inFlight { task.cancel() }
            for task in inFlight { _ = try? await task.value }
            if let error = error as? GatewayError { throw error }
            throw GatewayError(.badRequest, "the request body broke off: \(error)")
        }
    }

    /// One block's data shards and parity, each to its part's node, together. `filled`
    /// holds the block's bytes in order: as they are, the data shards of a full block or
    /// of a last block cut at its own boundaries (a Content-Length upload's); a chunked
    /// upload's short last block, filled `shardBytes` to a shard, is cut again into its own.
    /// With `sealing` (the parts' final lengths), the block is the last and each node
    /// stores its chunk and seals its part in one synced write.
    private func sendBlock(_ filled: [[UInt8]], index: Int, partIDs: [UInt64], clients: [IProtoClient], sealing: [Int64]?) async throws {
        let length = filled.reduce(0) { $0 + $1.count }
        let shape = StripeLayout.Block(index: index, offset: Int64(index) * Int64(layout.blockBytes), length: length)
        let width = shape.codedShardLength
        var shards = filled
        if length < layout.blockBytes, !filled.indices.allSatisfy({ filled[$0].count == shape.shardRange($0).count }) {
            // A chunked upload's last block, filled as a full one's would be: each shard
            // copied from `filled` a contiguous run at a time (a byte-wise joined() was a
            // fifth of the gateway's CPU on small PUTs).
            shards = (0..<StripeLayout.dataParts).map { shard in
                var bytes: [UInt8] = []
                bytes.reserveCapacity(width)
                var range = shape.shardRange(shard)
                while !range.isEmpty {
                    let source = range.lowerBound / layout.shardBytes, start = range.lowerBound % layout.shardBytes
                    let take = min(range.count, layout.shardBytes - start)
                    bytes.append(contentsOf: filled[source][start..<(start + take)])
                    range = (range.lowerBound + take)..<range.upperBound
                }
                return bytes
            }
        }
        if layout.parityParts > 0 {
            // A short block's shards differ by up to a byte; none is padded (one that shares
            // its storage with `filled` would be copied by any change).
            shards += code.parity(ofUneven: shards.map { $0[...] }, shardLength: width)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (part, shard) in shards.enumerated() {
                let client = clients[part], partID = partIDs[part]
                group.addTask {
                    let checksum = Int(Checksum.crc32(shard))
                    if let sealing {
                        try await client.putLastChunk(part: UInt(partID), chunk: index, checksum: checksum, data: shard, length: UInt(sealing[part]))
                    } else {
                        try await client.putChunk(part: UInt(partID), chunk: index, checksum: checksum, data: shard)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// The file's record, its parts sealed on their nodes: by the last block's chunks, or
    /// for an empty file (no blocks) here, every part together.
    private func seal(_ upload: UploadState, size: Int64, checksum: UInt32, name: FileName) async throws(GatewayError) -> FileRecord {
        let parts = (0..<layout.parts).map {
            PartRecord(partID: upload.partIDs[$0], fileID: upload.fileID, index: $0, node: upload.nodes[$0], length: layout.partLength($0, fileSize: size))
        }
        if size == 0 {
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for part in parts {
                        guard let client = nodes.client(part.node) else { throw GatewayError(.serviceUnavailable, "node \(part.node) is gone") }
                        group.addTask { try await client.sealPart(part: UInt(part.partID), chunks: 0, length: 0) }
                    }
                    try await group.waitForAll()
                }
            } catch {
                throw nodeFailure(error, during: "sealing the parts")
            }
        }
        let etag = "\"" + String(checksum, radix: 16) + "-" + String(upload.fileID, radix: 16) + "\""
        return FileRecord(
            name: name.text, fileID: upload.fileID, size: size, etag: etag, created: Date().timeIntervalSince1970,
            parityParts: layout.parityParts, shardBytes: layout.shardBytes, parts: parts)
    }

    // MARK: downloads

    public func file(named name: FileName) async throws(GatewayError) -> FileRecord? {
        do { return try await metadata.file(named: name.text) } catch { throw metadataFailure(error) }
    }

    /// Writes bytes `range` of `file` to `write`, a block's pieces at a time, fetching up to
    /// `blocksInFlight` blocks ahead. Throws when a block cannot be read even
    /// from parity: the caller cuts the response off rather than send wrong bytes.
    public func read(_ file: FileRecord, range: Range<Int64>, write: ([ByteBuffer]) async throws -> Void) async throws {
        let started = ContinuousClock.now
        let layout = try StripeLayout(parityParts: file.parityParts, shardBytes: file.shardBytes)
        let code = file.parityParts == self.layout.parityParts ? self.code : try ReedSolomon(dataShards: StripeLayout.dataParts, parityShards: file.parityParts)
        let blocks = Array(layout.blocks(covering: range))
        var fetches: [(task: Task<[ArraySlice<UInt8>], any Error>, cost: Int)] = []
        var next = 0
        defer {
            for fetch in fetches {
                fetch.task.cancel()
                budget.release(fetch.cost)
            }
        }
        for block in blocks {
            while fetches.count < configuration.blocksInFlight, next < blocks.count {
                let index = blocks[next]
                let cost = blockCost(layout, length: layout.block(index, fileSize: file.size).length)
                // Wait for budget only while holding none: waiting while holding could deadlock two downloads.
                if fetches.isEmpty {
                    await budget.acquire(cost)
                } else if !budget.tryAcquire(cost) {
                    break
                }
                fetches.append((Task { try await self.fetchBlock(index, of: file, layout: layout, code: code) }, cost))
                next += 1
            }
            let (fetch, cost) = fetches.removeFirst()
            defer { budget.release(cost) }
            // The fetch is consumed here: its task keeps the block's shards as its value, and
            // they are freed before the write waits for the client to take the block.
            let pieces = try await Self.pieces(of: consume fetch, block: block, range: range, layout: layout)
            metrics.downloadBytes.increment(by: pieces.reduce(0) { $0 + $1.readableBytes })
            try await write(pieces)
        }
        metrics.downloads.increment()
        metrics.downloadSeconds.record((ContinuousClock.now - started) / .seconds(1))
    }

    /// Block `block`'s shards, once `fetch` has them, each cut to `range` and copied into
    /// the buffer the HTTP channel sends: one write (one flush, one writev) per block,
    /// where five writes cost the channel five hops and flushes.
    private static func pieces(
        of fetch: consuming Task<[ArraySlice<UInt8>], any Error>, block: Int, range: Range<Int64>, layout: StripeLayout
    ) async throws -> [ByteBuffer] {
        var offset = Int64(block) * Int64(layout.blockBytes)
        var pieces: [ByteBuffer] = []
        for shard in try await fetch.value {
            let from = Int(max(range.lowerBound - offset, 0)), to = Int(min(range.upperBound - offset, Int64(shard.count)))
            offset += Int64(shard.count)
            guard from < to else { continue }
            pieces.append(ByteBuffer(bytes: shard.dropFirst(from).prefix(to - from)))
        }
        return pieces
    }

    /// What a block of `length` bytes holds in flight: its data and parity shards, and the
    /// copies on their way to or from the nodes. A small file's block is charged its own
    /// size, not a full block's: 5 MiB blocks would let only ten 1 KiB downloads run at once.
    private func blockCost(_ layout: StripeLayout, length: Int) -> Int {
        2 * layout.parts * StripeLayout.Block(index: 0, offset: 0, length: length).codedShardLength
    }

    /// Block `index` of `file` as its five data shards, checked; any that cannot be
    /// read (node down, chunk damaged, wrong checksum) are rebuilt from parity.
    func fetchBlock(_ index: Int, of file: FileRecord, layout: StripeLayout, code: ReedSolomon) async throws -> [ArraySlice<UInt8>] {
        let shape = layout.block(index, fileSize: file.size)
        let data = await fetchChunks(Array(0..<StripeLayout.dataParts), block: index, of: file, layout: layout)
        if data.allSatisfy({ $0 != nil }) {
            return data.map { $0! }
        }
        metrics.degradedReads.increment()
        let parity = await fetchChunks(Array(StripeLayout.dataParts..<layout.parts), block: index, of: file, layout: layout)
        do {
            let all = try Self.rebuild((data + parity).map { $0.map(Array.init) }, block: shape, code: code)
            logger.warning("block rebuilt from parity", metadata: ["file": "\(file.name)", "block": "\(index)", "missing": "\(data.indices.filter { data[$0] == nil })"])
            return all.prefix(StripeLayout.dataParts).map { $0[...] }
        } catch {
            metrics.unreadable.increment()
            logger.error("block cannot be read", metadata: ["file": "\(file.name)", "block": "\(index)", "error": "\(error)"])
            throw GatewayError(.serviceUnavailable, "block \(index) of \(file.name) cannot be read: \(error)")
        }
    }

    /// Every chunk of a block (data shards at their own lengths, then parity) from
    /// the ones present, indexed by part: pads the short shards for coding and
    /// cuts the rebuilt ones back.
    static func rebuild(_ chunks: [[UInt8]?], block: StripeLayout.Block, code: ReedSolomon) throws(ErasureError) -> [[UInt8]] {
        let width = block.codedShardLength
        let padded = chunks.map { $0.map { $0 + [UInt8](repeating: 0, count: width - $0.count) } }
        let all = try code.reconstruct(padded, shardLength: width)
        return all.indices.map { $0 < StripeLayout.dataParts ? Array(all[$0].prefix(block.shardRange($0).count)) : all[$0] }
    }

    /// Chunk `block` of each of `parts`, concurrently, each where it arrived (a slice of
    /// its reply's body); nil where it could not be read intact.
    func fetchChunks(_ parts: [Int], block: Int, of file: FileRecord, layout: StripeLayout) async -> [ArraySlice<UInt8>?] {
        await withTaskGroup(of: (Int, ArraySlice<UInt8>?).self) { group in
            for (position, part) in parts.enumerated() {
                let record = file.parts[part]
                let expected = layout.chunkLength(part: part, block: block, fileSize: file.size)
                group.addTask {
                    guard let client = self.nodes.client(record.node) else { return (position, nil) }
                    do {
                        let reply = try await Self.getChunk(part: record.partID, chunk: block, from: client)
                        guard reply.data.count == expected, UInt(Checksum.crc32(reply.data)) == reply.checksum else {
                            self.metrics.checksumFailures.increment()
                            self.logger.error("a chunk came back damaged", metadata: ["part": "\(record.partID)", "node": "\(record.node)", "block": "\(block)"])
                            return (position, nil)
                        }
                        return (position, reply.data)
                    } catch {
                        if (error as? ClientError)?.returnCode == .volCorrupt { self.metrics.checksumFailures.increment() }
                        return (position, nil)
                    }
                }
            }
            var result = [ArraySlice<UInt8>?](repeating: nil, count: parts.count)
            for await (position, bytes) in group { result[position] = bytes }
            return result
        }
    }

    /// VOL_GET_CHUNK, its data left in the reply's body: the generated `getChunk`
    /// decodes `bin` into an array of its own, a copy of every chunk a GET reads.
    static func getChunk(part: UInt64, chunk: Int, from client: IProtoClient) async throws(ClientError) -> (checksum: UInt, data: ArraySlice<UInt8>) {
        let call = VolumeCalls.getChunk(part: UInt(part), chunk: chunk)
        let response = try await client.call(call.funcID, body: call.body).checked()
        do throws(IProtoError) {
            var values = try Arguments(values: response.body, count: 1)
            guard try values.arrayCount() == 2 else { throw IProtoError(.badArguments, "expected an array of 2 values") }
            return (try values.uint(), try values.binarySlice())
        } catch {
            throw .protocolViolation("\(call.name) reply: \(error.message)")
        }
    }

    // MARK: deletes, listing, reclaiming

    public func delete(_ name: FileName) async throws(GatewayError) -> Bool {
        let deleted: FileRecord?
        do { deleted = try await metadata.deleteFile(named: name.text) } catch { throw metadataFailure(error) }
        guard let deleted else { return false }
        nodes.committed([], removing: deleted.parts)
        return true
    }

    public func list(prefix: String, after: String?, limit: Int) async throws(GatewayError) -> [FileRecord] {
        do { return try await metadata.files(prefix: prefix, after: after, limit: limit) } catch { throw metadataFailure(error) }
    }

    /// Deletes garbage parts on their nodes (a node that is down keeps its garbage
    /// until it is back); returns how many were deleted.
    @discardableResult
    public func reclaim() async -> Int {
        guard let garbage = try? await metadata.garbage(limit: 1000), !garbage.isEmpty else {
            metrics.garbageParts.record(0)
            return 0
        }
        let deleted = await withTaskGroup(of: UInt64?.self) { group in
            for part in garbage {
                group.addTask {
                    guard let client = self.nodes.client(part.node), self.nodes.isAlive(part.node) else { return nil }
                    do {
                        try await client.deletePart(part: UInt(part.partID))
                        return part.partID
                    } catch {
                        return nil
                    }
                }
            }
            var deleted: [UInt64] = []
            for await id in group { if let id { deleted.append(id) } }
            return deleted
        }
        try? await metadata.forgetGarbage(deleted)
        metrics.partsReclaimed.increment(by: deleted.count)
        metrics.garbageParts.record(garbage.count - deleted.count)
        return deleted.count
    }

    func publishMetrics() async {
        let statuses = nodes.statuses()
        metrics.nodes.record(statuses.count)
        metrics.liveNodes.record(statuses.filter(\.alive).count)
        for status in statuses {
            metrics.nodeLiveBytes(status.id).record(status.liveBytes)
            metrics.nodeCapacity(status.id).record(status.capacityBytes)
        }
        metrics.fillSpread.record(FilePlacement.liveSpread(nodes.loads()))
        metrics.transferMemory.record(budget.held)
        if let counts = try? await metadata.counts() { metrics.files.record(counts.files) }
    }

    /// `iproto_files_idle_closes_total`, for the HTTP server's ``ClientIdleTimeout``.
    public var idleCloses: Counter { metrics.idleCloses }

    // MARK: errors

    private func metadataFailure(_ error: any Error) -> GatewayError {
        logger.error("metadata store failed", metadata: ["error": "\(String(reflecting: error))"])
        return GatewayError(.serviceUnavailable, "the metadata store failed: \(error)")
    }

    private func nodeFailure(_ error: any Error, during what: String) -> GatewayError {
        if let error = error as? GatewayError { return error }
        if let error = error as? ClientError {
            switch error.returnCode {
            case .volFull?: return GatewayError(.insufficientStorage, "a storage node is full while \(what): \(error)")
            default: break
            }
        }
        return GatewayError(.serviceUnavailable, "a storage node failed while \(what): \(error); nothing was stored, try again")
    }
}

extension FileStore {
    /// The gateway's background loops: probing the nodes, reclaiming garbage
    /// parts, sweeping orphans, publishing metrics. Cancel the tasks to stop them.
    public func startLoops() -> [Task<Void, Never>] {
        let sweep = configuration.orphanSweepInterval
        return [
            Task { await every(self.configuration.probeInterval) { await self.nodes.probeAll() } },
            Task { await every(self.configuration.reclaimInterval) { await self.reclaim() } },
            Task { await every(self.configuration.metadataRefreshInterval) { await self.nodes.refreshFromMetadata() } },
            Task { await every(.seconds(1)) { await self.publishMetrics() } },
        ] + (sweep == .zero ? [] : [
            Task {
                // Not at start, when no node has been seen alive yet.
                try? await Task.sleep(for: sweep)
                await every(sweep) { _ = await self.sweepOrphans() }
            }
        ])
    }
}
