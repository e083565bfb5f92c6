import Durability

/// Why a volume store could not do what it was asked.
public struct VolumeError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// The part or chunk is not stored here.
        case notFound
        /// The bytes on disk do not match their checksum (or their index entry).
        case corrupt
        /// The disk refused a read, write or sync; or no volume can take writes.
        case io
        /// The records asked for cannot be stored as they are (nothing of them was written).
        case invalid
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    static func io(_ error: FileSystemError) -> VolumeError { VolumeError(.io, error.description) }
}

/// One volume: its data file (`NNNNNNNN.dat`) and its index (`NNNNNNNN.idx`).
///
/// Bytes follow one order: records are appended to the data file and synced,
/// and only then are their index entries appended; an entry points only at
/// synced bytes. The index is a cache of the data file: at open, whatever
/// intact records follow the last indexed one (a crash between the sync and
/// the index write) are indexed again, and a torn or damaged index entry is
/// rewritten from the data. The data file is never cut: bytes after the last
/// intact record, or a last indexed record that does not match its entry,
/// make the volume read-only (``readOnlyReason``), and writes go to a new one.
///
/// @unchecked Sendable: `number`, `reader` and the entries returned are
/// immutable; the writing state is touched only by the owning store under its lock.
final class Volume: @unchecked Sendable {
    let number: UInt32
    let reader: ReadableFile
    private var data: DurableFile?
    private var index: DurableFile?
    /// Why the volume takes no more writes, or nil while it does.
    private(set) var readOnlyReason: String?
    /// Where the next record goes: the end of the last intact record.
    private(set) var end: Int

    private init(number: UInt32, reader: ReadableFile, data: DurableFile?, index: DurableFile?, end: Int, readOnlyReason: String?) {
        self.number = number
        self.reader = reader
        self.data = data
        self.index = index
        self.end = end
        self.readOnlyReason = readOnlyReason
    }

    /// A new, empty volume `number` in `directory`, durable (files and their names) on return.
    static func create(in directory: String, number: UInt32) throws(FileSystemError) -> Volume {
        let dataPath = directory + "/" + VolumeFormat.dataName(number)
        let data = try DurableFile.create(dataPath)
        try data.write(VolumeFormat.superblock())
        try data.sync()
        let index = try DurableFile.create(directory + "/" + VolumeFormat.indexName(number))
        try index.sync()
        try DurableFile.syncDirectory(directory)
        return Volume(number: number, reader: try ReadableFile(dataPath), data: data, index: index,
                      end: VolumeFormat.superblockSize, readOnlyReason: nil)
    }

    /// Opens volume `number` of `directory` and recovers its index (see the type's
    /// comment); returns it with every record's entry, in volume order.
    static func open(in directory: String, number: UInt32) throws(FileSystemError) -> (Volume, [IndexEntry]) {
        let dataPath = directory + "/" + VolumeFormat.dataName(number)
        let indexPath = directory + "/" + VolumeFormat.indexName(number)
        let reader = try ReadableFile(dataPath)
        let length = try reader.length()
        if let problem = VolumeFormat.superblockProblem(try reader.read(at: 0, count: VolumeFormat.superblockSize)) {
            return (Volume(number: number, reader: reader, data: nil, index: nil, end: length, readOnlyReason: problem), [])
        }
        let indexBytes = try DurableFile.read(indexPath) ?? []
        var entries: [IndexEntry] = []
        var end = VolumeFormat.superblockSize
        var offset = 0
        while let entry = VolumeFormat.indexEntry(indexBytes, at: offset), entry.offset == UInt64(end) {
            entries.append(entry)
            end += VolumeFormat.recordSize(dataLength: Int(entry.length))
            offset += VolumeFormat.indexEntrySize
        }
        let indexIntact = offset == indexBytes.count
        var readOnly: String?
        // The last indexed record must be where its entry says, intact.
        if let last = entries.last {
            if end > length {
                readOnly = "the index's last entry (part \(last.part) chunk \(last.chunk)) ends at \(end), past the volume's \(length) bytes"
            } else if case .failure(let problem) = Self.record(reader, at: Int(last.offset)).flatMap({ found in
                found.entry == last ? .success(found) : .failure(.damaged("the record there is part \(found.entry.part) chunk \(found.entry.chunk)"))
            }) {
                readOnly = "the index's last entry (part \(last.part) chunk \(last.chunk) at \(last.offset)) does not match the volume: \(problem)"
            }
        }
        // Intact records after it were synced but not indexed: index them again.
        var recovered: [IndexEntry] = []
        if readOnly == nil {
            while end < length {
                switch Self.record(reader, at: end) {
                case .success(let found):
                    recovered.append(found.entry)
                    end += VolumeFormat.recordSize(dataLength: Int(found.entry.length))
                case .failure(let problem):
                    readOnly = "bytes \(end)..<\(length) after the last intact record are not a record (\(problem)); the volume is kept as it is"
                }
                if readOnly != nil { break }
            }
        }
        entries += recovered
        // The index is rewritten from the data when it lost or garbled entries (it holds no data of its own).
        if !indexIntact || !recovered.isEmpty {
            try writeIndex(entries, to: indexPath, in: directory)
        }
        guard readOnly == nil else {
            return (Volume(number: number, reader: reader, data: nil, index: nil, end: end, readOnlyReason: readOnly), entries)
        }
        let data = try DurableFile.openForAppending(dataPath, length: end)
        let index = try DurableFile.openForAppending(indexPath, length: entries.count * VolumeFormat.indexEntrySize)
        return (Volume(number: number, reader: reader, data: data, index: index, end: end, readOnlyReason: nil), entries)
    }

    /// A new volume `number` holding the records `entries` point at in `source`
    /// (each read back and checked first), written under a temporary name, synced,
    /// renamed, indexed; returns it with the copies' entries, in the same order.
    /// It takes no writes: appends go to a volume of their own.
    static func compacted(in directory: String, number: UInt32, copying entries: [IndexEntry],
                          from source: Volume) throws(VolumeError) -> (volume: Volume, entries: [IndexEntry]) {
        let dataPath = directory + "/" + VolumeFormat.dataName(number)
        let indexPath = directory + "/" + VolumeFormat.indexName(number)
        let temporary = dataPath + VolumeFormat.compactingSuffix
        do {
            let file = try DurableFile.create(temporary)
            var bytes = VolumeFormat.superblock()
            var written = 0
            var copies: [IndexEntry] = []
            copies.reserveCapacity(entries.count)
            for entry in entries {
                let data = try source.read(entry)
                copies.append(IndexEntry(part: entry.part, chunk: entry.chunk, kind: entry.kind,
                                         offset: UInt64(written + bytes.count), length: entry.length))
                VolumeFormat.append(VolumeRecord(part: entry.part, chunk: entry.chunk, kind: entry.kind, data: data), to: &bytes)
                // Written in pieces of a few MiB: a volume is up to GiBs.
                if bytes.count >= 8 << 20 {
                    try file.write(bytes)
                    written += bytes.count
                    bytes.removeAll(keepingCapacity: true)
                }
            }
            try file.write(bytes)
            written += bytes.count
            try file.sync()
            try file.rename(to: dataPath)
            try DurableFile.syncDirectory(directory)
            // The index after the data: a volume whose index is missing has it rebuilt at open.
            try writeIndex(copies, to: indexPath, in: directory)
            let volume = Volume(number: number, reader: try ReadableFile(dataPath), data: nil, index: nil, end: written, readOnlyReason: nil)
            return (volume, copies)
        } catch {
            try? DurableFile.remove(temporary)
            if let error = error as? VolumeError { throw error }
            throw VolumeError(.io, "compacting volume \(source.number) into \(number): \(error)")
        }
    }

    /// Writes a whole index of `entries` at `indexPath`: aside (under the name
    /// compaction's leftovers have, which the next open removes), synced, renamed.
    private static func writeIndex(_ entries: [IndexEntry], to indexPath: String, in directory: String) throws(FileSystemError) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * VolumeFormat.indexEntrySize)
        for entry in entries { VolumeFormat.append(entry, to: &bytes) }
        let file = try DurableFile.create(indexPath + VolumeFormat.compactingSuffix)
        try file.write(bytes)
        try file.sync()
        try file.rename(to: indexPath)
        try DurableFile.syncDirectory(directory)
    }

    /// Closes the volume to appends (it is being compacted); reads go on.
    func stopWrites() {
        data = nil
        index = nil
    }

    /// The record at `offset`, checked, with its entry.
    private static func record(_ reader: ReadableFile, at offset: Int) -> Result<(entry: IndexEntry, data: [UInt8], checksum: UInt32), VolumeFormat.RecordProblem> {
        do {
            let head = try reader.read(at: offset, count: VolumeFormat.recordHeaderSize)
            let header: VolumeFormat.Header
            switch VolumeFormat.header(head, at: 0) {
            case .success(let found): header = found
            case .failure(let problem): return .failure(problem)
            }
            // The data is read on its own, not after the header in one array: no copy of it to cut it out again.
            let data = try reader.read(at: offset + VolumeFormat.recordHeaderSize, count: Int(header.length))
            if let problem = VolumeFormat.problem(data: data, header: header) { return .failure(problem) }
            return .success((IndexEntry(part: header.part, chunk: header.chunk, kind: header.kind, offset: UInt64(offset), length: header.length),
                             data, header.dataChecksum))
        } catch {
            return .failure(.damaged(error.description))
        }
    }

    /// Appends `records` and syncs them, then indexes them; returns their entries.
    /// On a failed write or sync the volume turns read-only (what reached the disk is
    /// unknown) and the error is thrown: nothing of the batch is acknowledged.
    func append(_ records: [VolumeRecord]) throws(FileSystemError) -> [IndexEntry] {
        guard readOnlyReason == nil, let data, let index else {
            throw FileSystemError("volume \(number) is read-only: \(readOnlyReason ?? "closed")")
        }
        var bytes: [UInt8] = []
        var entries: [IndexEntry] = []
        for record in records {
            entries.append(IndexEntry(part: record.part, chunk: record.chunk, kind: record.kind,
                                      offset: UInt64(end + bytes.count), length: UInt32(record.data.count)))
            VolumeFormat.append(record, to: &bytes)
        }
        do {
            try data.write(bytes)
            try data.sync()
        } catch {
            readOnlyReason = "a write or sync failed: \(error)"
            throw error
        }
        end += bytes.count
        var indexBytes: [UInt8] = []
        for entry in entries { VolumeFormat.append(entry, to: &indexBytes) }
        // Not synced: a lost index entry is rebuilt from the synced record at the next open.
        do { try index.write(indexBytes) } catch { readOnlyReason = "its index could not be written: \(error)" }
        return entries
    }

    /// The data of the record `entry` points at, checked against the entry and its checksum.
    func read(_ entry: IndexEntry) throws(VolumeError) -> [UInt8] { try readChecked(entry).data }

    /// ``read(_:)`` with the data's CRC-32, which the check has just confirmed.
    func readChecked(_ entry: IndexEntry) throws(VolumeError) -> (data: [UInt8], checksum: UInt32) {
        switch Self.record(reader, at: Int(entry.offset)) {
        case .success(let found):
            guard found.entry == entry else {
                throw VolumeError(.corrupt, "volume \(number) at \(entry.offset): part \(found.entry.part) chunk \(found.entry.chunk), not part \(entry.part) chunk \(entry.chunk)")
            }
            return (found.data, found.checksum)
        case .failure(let problem):
            throw VolumeError(.corrupt, "volume \(number) at \(entry.offset), part \(entry.part) chunk \(entry.chunk): \(problem)")
        }
    }
}
