import Durability
import Synchronization

/// A storage node's parts, packed in large append-only volumes (Haystack's and
/// SeaweedFS's design: one file per volume and its index, not one file per
/// part), every record checksummed, every batch synced before it returns.
///
/// A part arrives as chunks (records of at most ``VolumeFormat/maxRecordData``
/// bytes, numbered from 0) and is complete once sealed with its chunk count and
/// length; a tombstone deletes it. One volume takes writes at a time; once it
/// holds `volumeBytes` the next batch starts a new one. Reads run beside
/// writes (pread on the volumes' files), and check each record against its
/// index entry and checksum. docs/volume-format.md describes the bytes.
public final class VolumeStore: Sendable {
    /// What the store knows of a part.
    public struct Part: Equatable, Sendable {
        /// Its chunks' lengths, by chunk number, as far as they have arrived.
        public var chunkLengths: [UInt32: UInt32] = [:]
        /// Set by its seal: the chunk count and the data's total length.
        public var sealed: (chunks: UInt32, length: UInt64)?
        /// The bytes its records take in volumes, headers and padding included.
        public var storedBytes = 0

        public init() {}

        public static func == (lhs: Part, rhs: Part) -> Bool {
            lhs.chunkLengths == rhs.chunkLengths && lhs.sealed?.chunks == rhs.sealed?.chunks
                && lhs.sealed?.length == rhs.sealed?.length && lhs.storedBytes == rhs.storedBytes
        }
    }

    private struct Location {
        var volume: Volume
        var entry: IndexEntry
        var size: Int { VolumeFormat.recordSize(dataLength: Int(entry.length)) }
    }

    private struct State {
        var volumes: [UInt32: Volume] = [:]
        var active: Volume?
        /// The number the next new volume gets (written or compacted): numbers are never reused.
        var nextNumber: UInt32 = 1
        var chunks: [PartID: [UInt32: Location]] = [:]
        var seals: [PartID: Location] = [:]
        /// Kept through compaction for as long as the node runs: a tombstone is what
        /// keeps a deleted part's records in older volumes from counting again at the next open.
        var tombstones: [PartID: Location] = [:]
        var parts: [PartID: Part] = [:]
        var deleted: Set<PartID> = []
        var usedBytes = 0
        /// Per volume: the bytes its records take, and the bytes of those records still
        /// current (a chunk, seal or tombstone nothing later replaced). The rest is garbage.
        var recordBytes: [UInt32: Int] = [:]
        var liveBytes: [UInt32: Int] = [:]

        mutating func apply(_ entry: IndexEntry, in volume: Volume) {
            let size = VolumeFormat.recordSize(dataLength: Int(entry.length))
            usedBytes += size
            recordBytes[volume.number, default: 0] += size
            guard !deleted.contains(entry.part) else { return }
            let location = Location(volume: volume, entry: entry)
            switch entry.kind {
            case .chunk:
                if let replaced = chunks[entry.part]?[entry.chunk] {
                    supersede(replaced)
                    parts[entry.part]?.storedBytes -= replaced.size
                }
                chunks[entry.part, default: [:]][entry.chunk] = location
                parts[entry.part, default: Part()].chunkLengths[entry.chunk] = entry.length
                parts[entry.part, default: Part()].storedBytes += size
            case .seal:
                // The seal's data (the length) is read back at open; on a write the writer knows it.
                if let replaced = seals[entry.part] {
                    supersede(replaced)
                    parts[entry.part]?.storedBytes -= replaced.size
                }
                seals[entry.part] = location
                parts[entry.part, default: Part()].storedBytes += size
            case .tombstone:
                for replaced in chunks[entry.part]?.values ?? [:].values { supersede(replaced) }
                if let replaced = seals[entry.part] { supersede(replaced) }
                chunks[entry.part] = nil
                seals[entry.part] = nil
                parts[entry.part] = nil
                deleted.insert(entry.part)
                tombstones[entry.part] = location
            }
            liveBytes[volume.number, default: 0] += size
        }

        private mutating func supersede(_ location: Location) {
            liveBytes[location.volume.number, default: 0] -= location.size
        }

        /// The current records `volume` holds, in volume order.
        func liveEntries(of volume: Volume) -> [IndexEntry] {
            var entries: [IndexEntry] = []
            for locations in chunks.values {
                for location in locations.values where location.volume === volume { entries.append(location.entry) }
            }
            for location in seals.values where location.volume === volume { entries.append(location.entry) }
            for location in tombstones.values where location.volume === volume { entries.append(location.entry) }
            return entries.sorted { $0.offset < $1.offset }
        }

        /// Points whatever still is at `old` in `from` at `new` in `to`; false when
        /// the record stopped being current meanwhile (its part was deleted).
        mutating func move(_ old: IndexEntry, from: Volume, to new: IndexEntry, in volume: Volume) -> Bool {
            let target = Location(volume: volume, entry: new)
            func isOld(_ location: Location?) -> Bool { location.map { $0.volume === from && $0.entry == old } ?? false }
            switch old.kind {
            case .chunk:
                guard isOld(chunks[old.part]?[old.chunk]) else { return false }
                chunks[old.part]?[old.chunk] = target
            case .seal:
                guard isOld(seals[old.part]) else { return false }
                seals[old.part] = target
            case .tombstone:
                guard isOld(tombstones[old.part]) else { return false }
                tombstones[old.part] = target
            }
            liveBytes[volume.number, default: 0] += target.size
            return true
        }
    }

    public let directory: String
    public let volumeBytes: Int
    private let state: Mutex<State>

    /// Volumes that take no more writes, and why: a damaged tail, a failed sync.
    public var readOnlyVolumes: [(volume: UInt32, reason: String)] {
        state.withLock { state in
            state.volumes.values.compactMap { volume in volume.readOnlyReason.map { (volume.number, $0) } }.sorted { $0.volume < $1.volume }
        }
    }

    /// Opens (or starts) the store in `directory`, recovering every volume's index.
    /// A damaged volume does not stop it: it is kept read-only (``readOnlyVolumes``).
    public init(directory: String, volumeBytes: Int = 1 << 30) throws(VolumeError) {
        self.directory = directory
        self.volumeBytes = volumeBytes
        var loaded = State()
        do throws(FileSystemError) {
            try DurableFile.makeDirectory(directory)
            let names = try DurableFile.list(directory)
            // What a compaction that did not finish left behind: its old volume is intact.
            for name in names where name.hasSuffix(VolumeFormat.compactingSuffix) { try DurableFile.remove(directory + "/" + name) }
            let numbers = names.compactMap(VolumeFormat.volume(ofDataFile:)).sorted()
            loaded.nextNumber = (numbers.last ?? 0) + 1
            for number in numbers {
                let (volume, entries) = try Volume.open(in: directory, number: number)
                loaded.volumes[number] = volume
                for entry in entries { loaded.apply(entry, in: volume) }
                if volume.readOnlyReason == nil { loaded.active = volume }
            }
        } catch let error {
            throw .io(error)
        }
        state = Mutex(loaded)
        // Seals carry the part's length in their data: read them back.
        let seals = state.withLock { state in state.seals.map { ($0.key, $0.value) } }
        for (part, location) in seals {
            let data = try location.volume.read(location.entry)
            guard data.count == 8 else { throw VolumeError(.corrupt, "the seal of part \(part) holds \(data.count) bytes, not 8") }
            let length = LittleEndian.load(data, at: 0, size: 8)
            state.withLock { $0.parts[part]?.sealed = (location.entry.chunk, length) }
        }
    }

    /// Appends `records` (chunks, seals, tombstones) durably: on return they are
    /// synced, and reads see them. Throws without acknowledging any of them
    /// when the disk refuses; the next call starts a new volume.
    public func append(_ records: [VolumeRecord]) throws(VolumeError) {
        for record in records {
            if record.data.count > VolumeFormat.maxRecordData {
                throw VolumeError(.invalid, "a record of \(record.data.count) bytes exceeds the \(VolumeFormat.maxRecordData)-byte limit")
            }
            if record.kind == .seal && record.data.count != 8 {
                throw VolumeError(.invalid, "the seal of part \(record.part) holds \(record.data.count) bytes, not its 8-byte length")
            }
        }
        let result: Result<Void, VolumeError> = state.withLock { state in
            do throws(FileSystemError) {
                let bytes = records.reduce(0) { $0 + VolumeFormat.recordSize(dataLength: $1.data.count) }
                let volume = try Self.writable(&state, directory: directory, volumeBytes: volumeBytes, adding: bytes)
                let entries = try volume.append(records)
                for (record, entry) in zip(records, entries) {
                    state.apply(entry, in: volume)
                    if record.kind == .seal {
                        state.parts[record.part]?.sealed = (record.chunk, LittleEndian.load(record.data, at: 0, size: 8))
                    }
                }
                return .success(())
            } catch let error {
                return .failure(.io(error))
            }
        }
        try result.get()
    }

    /// The volume the next `bytes` go to: the active one, or a new one when it is
    /// read-only or would pass `volumeBytes` (a batch never spans volumes).
    private static func writable(_ state: inout State, directory: String, volumeBytes: Int, adding bytes: Int) throws(FileSystemError) -> Volume {
        if let active = state.active, active.readOnlyReason == nil,
            active.end + bytes <= volumeBytes || active.end == VolumeFormat.superblockSize
        {
            return active
        }
        let number = state.nextNumber
        state.nextNumber += 1
        let volume = try Volume.create(in: directory, number: number)
        state.volumes[number] = volume
        state.active = volume
        return volume
    }

    /// Chunk `chunk` of `part`, checked against its checksum.
    public func read(_ part: PartID, chunk: UInt32) throws(VolumeError) -> [UInt8] { try readChecked(part, chunk: chunk).data }

    /// ``read(_:chunk:)`` with the chunk's CRC-32 as its record stores it, confirmed by the read's check.
    public func readChecked(_ part: PartID, chunk: UInt32) throws(VolumeError) -> (data: [UInt8], checksum: UInt32) {
        guard let location = state.withLock({ $0.chunks[part]?[chunk] }), location.entry.kind == .chunk else {
            throw VolumeError(.notFound, "part \(part) has no chunk \(chunk) here")
        }
        return try location.volume.readChecked(location.entry)
    }

    /// What the store holds of `part`, or nil (never written, or deleted).
    public func part(_ part: PartID) -> Part? { state.withLock { $0.parts[part] } }

    /// Whether `part` was deleted (its id is never used again).
    public func isDeleted(_ part: PartID) -> Bool { state.withLock { $0.deleted.contains(part) } }

    /// The parts held, in ascending id order after `after`, at most `limit`, and whether each is sealed.
    public func parts(after: PartID?, limit: Int) -> [(part: PartID, sealed: Bool)] {
        state.withLock { state in
            state.parts.lazy.filter { after == nil || $0.key > after! }.map { ($0.key, $0.value.sealed != nil) }
                .sorted { $0.0 < $1.0 }.prefix(limit).map { ($0.0, $0.1) }
        }
    }

    /// One volume's share of the store.
    public struct VolumeSummary: Equatable, Sendable {
        public var number: UInt32
        /// The bytes its records take (superblock excluded).
        public var recordBytes: Int
        /// The bytes of those records that are still current; the rest is garbage compaction reclaims.
        public var liveBytes: Int
        /// Takes the next writes.
        public var active: Bool
        /// Why it takes no writes (and is never compacted), or nil.
        public var readOnlyReason: String?

        public var garbageBytes: Int { recordBytes - liveBytes }

        public init(number: UInt32, recordBytes: Int, liveBytes: Int, active: Bool, readOnlyReason: String? = nil) {
            self.number = number
            self.recordBytes = recordBytes
            self.liveBytes = liveBytes
            self.active = active
            self.readOnlyReason = readOnlyReason
        }
    }

    public var volumes: [VolumeSummary] {
        state.withLock { state in
            state.volumes.values.map { volume in
                VolumeSummary(number: volume.number, recordBytes: state.recordBytes[volume.number] ?? 0,
                              liveBytes: state.liveBytes[volume.number] ?? 0, active: state.active === volume,
                              readOnlyReason: volume.readOnlyReason)
            }.sorted { $0.number < $1.number }
        }
    }

    /// What one compaction did.
    public struct Compaction: Equatable, Sendable {
        public var volume: UInt32
        /// The volume that holds its current records now (nil when it held none).
        public var into: UInt32?
        /// Bytes the node's volumes take less than before.
        public var reclaimedBytes: Int
    }

    /// Rewrites volume `number` with only its current records (Haystack's and
    /// SeaweedFS's compaction), then drops it:
    /// 1. under the lock it stops taking writes (the next append starts a new
    ///    volume) and its current records are listed;
    /// 2. without the lock, reads and writes going on, they are copied, each
    ///    checked against its checksum, into `NNNNNNNN.dat.compacting`, synced,
    ///    renamed to a new volume number and indexed;
    /// 3. under the lock every record still current moves to the new volume (a
    ///    part deleted meanwhile is garbage there);
    /// 4. the old volume's files are removed. Reads that took its records
    ///    before step 3 still read them: the open descriptor outlives the name.
    /// A crash before the rename leaves the old volume as it was (the temporary
    /// file is removed at the next open); after it, both volumes hold the
    /// records, the new one later, so it is the new one's that count.
    /// A damaged (read-only) volume is never compacted: an operator looks at it first.
    public func compact(_ number: UInt32) throws(VolumeError) -> Compaction {
        let prepared: Result<(Volume, [IndexEntry], UInt32), VolumeError> = state.withLock { state in
            guard let volume = state.volumes[number] else { return .failure(VolumeError(.notFound, "there is no volume \(number)")) }
            if let reason = volume.readOnlyReason {
                return .failure(VolumeError(.invalid, "volume \(number) is read-only (\(reason)); it is not compacted"))
            }
            if state.active === volume { state.active = nil }
            volume.stopWrites()
            let into = state.nextNumber
            state.nextNumber += 1
            return .success((volume, state.liveEntries(of: volume), into))
        }
        let (old, entries, into) = try prepared.get()
        let copy = entries.isEmpty ? nil : try Volume.compacted(in: directory, number: into, copying: entries, from: old)
        let reclaimed = state.withLock { state in
            let before = state.recordBytes[number] ?? 0
            var after = 0
            if let copy {
                state.volumes[into] = copy.volume
                after = copy.entries.reduce(0) { $0 + VolumeFormat.recordSize(dataLength: Int($1.length)) }
                state.recordBytes[into] = after
                for (previous, moved) in zip(entries, copy.entries) {
                    _ = state.move(previous, from: old, to: moved, in: copy.volume)
                }
            }
            state.volumes[number] = nil
            state.recordBytes[number] = nil
            state.liveBytes[number] = nil
            state.usedBytes += after - before
            return before - after + (copy == nil ? VolumeFormat.superblockSize : 0)
        }
        do throws(FileSystemError) {
            try DurableFile.remove(directory + "/" + VolumeFormat.dataName(number))
            try DurableFile.remove(directory + "/" + VolumeFormat.indexName(number))
            try DurableFile.syncDirectory(directory)
        } catch {
            throw .io(error)
        }
        return Compaction(volume: number, into: copy.map { _ in into }, reclaimedBytes: reclaimed)
    }

    /// The parts held (complete or not), and the bytes every volume takes.
    public var usage: (parts: Int, usedBytes: Int) {
        state.withLock { state in (state.parts.count, state.usedBytes + state.volumes.count * VolumeFormat.superblockSize) }
    }
}
