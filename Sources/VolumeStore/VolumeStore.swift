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
    }

    private struct State {
        var volumes: [UInt32: Volume] = [:]
        var active: Volume?
        var chunks: [PartID: [UInt32: Location]] = [:]
        var seals: [PartID: Location] = [:]
        var parts: [PartID: Part] = [:]
        var deleted: Set<PartID> = []
        var usedBytes = 0

        mutating func apply(_ entry: IndexEntry, in volume: Volume) {
            let size = VolumeFormat.recordSize(dataLength: Int(entry.length))
            usedBytes += size
            guard !deleted.contains(entry.part) else { return }
            switch entry.kind {
            case .chunk:
                chunks[entry.part, default: [:]][entry.chunk] = Location(volume: volume, entry: entry)
                parts[entry.part, default: Part()].chunkLengths[entry.chunk] = entry.length
                parts[entry.part, default: Part()].storedBytes += size
            case .seal:
                // The seal's data (the length) is read back at open; on a write the writer knows it.
                seals[entry.part] = Location(volume: volume, entry: entry)
                parts[entry.part, default: Part()].storedBytes += size
            case .tombstone:
                chunks[entry.part] = nil
                seals[entry.part] = nil
                parts[entry.part] = nil
                deleted.insert(entry.part)
            }
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
            let numbers = try DurableFile.list(directory).compactMap(VolumeFormat.volume(ofDataFile:)).sorted()
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
        let number = (state.volumes.keys.max() ?? 0) + 1
        let volume = try Volume.create(in: directory, number: number)
        state.volumes[number] = volume
        state.active = volume
        return volume
    }

    /// Chunk `chunk` of `part`, checked against its checksum.
    public func read(_ part: PartID, chunk: UInt32) throws(VolumeError) -> [UInt8] {
        guard let location = state.withLock({ $0.chunks[part]?[chunk] }), location.entry.kind == .chunk else {
            throw VolumeError(.notFound, "part \(part) has no chunk \(chunk) here")
        }
        return try location.volume.read(location.entry)
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

    /// The parts held (complete or not), and the bytes every volume takes.
    public var usage: (parts: Int, usedBytes: Int) {
        state.withLock { state in (state.parts.count, state.usedBytes + state.volumes.count * VolumeFormat.superblockSize) }
    }
}
