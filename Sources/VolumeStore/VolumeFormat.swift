import Durability

/// Names a part a storage node keeps: the file-store gateway gives every part of
/// every upload its own id, never reused (a replaced file's new parts get new ids).
public struct PartID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (lhs: PartID, rhs: PartID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue, radix: 16) }
}

/// What one record of a volume says.
public enum RecordKind: UInt8, Sendable {
    /// Chunk `chunk` of the part: its bytes.
    case chunk = 1
    /// The part is complete: `chunk` chunks, the data's total length (8 bytes, little-endian) as the data.
    case seal = 2
    /// The part is deleted; its chunks are garbage for compaction.
    case tombstone = 3
}

/// One record as it is written and read back.
public struct VolumeRecord: Equatable, Sendable {
    public var part: PartID
    public var chunk: UInt32
    public var kind: RecordKind
    public var data: [UInt8]

    public init(part: PartID, chunk: UInt32, kind: RecordKind, data: [UInt8]) {
        self.part = part
        self.chunk = chunk
        self.kind = kind
        self.data = data
    }
}

/// Where a record lives, as the index says: what an index entry holds.
public struct IndexEntry: Equatable, Sendable {
    public var part: PartID
    public var chunk: UInt32
    public var kind: RecordKind
    /// The record's first byte (its header) in the volume file.
    public var offset: UInt64
    /// The record's data length.
    public var length: UInt32
}

/*
 * The bytes on disk, all integers little-endian (docs/volume-format.md has the tables).
 *
 * A volume, NNNNNNNN.dat (its number in 8 hex digits):
 *     "IPVOLUME" (8), format version u16 (1), 6 reserved bytes (0): 16 bytes, then records,
 *     each starting at a multiple of 8:
 *     +----------+----------------+---------+-----------+---------+---------+-------------+------------+------+-----+
 *     | "PRT1" 4 | header crc u32 | part u64 | chunk u32 | kind u8 | 0 0 0   | length u32  | data crc u32 | data | pad |
 *     +----------+----------------+---------+-----------+---------+---------+-------------+------------+------+-----+
 *     header crc covers bytes 8..<32 of the record; pad is zeros up to the next multiple of 8.
 *
 * Its index, NNNNNNNN.idx: 32-byte entries, one per record, in volume order:
 *     part u64, chunk u32, kind u8, 3 zero bytes, offset u64, length u32, crc u32 of the first 28 bytes.
 */
public enum VolumeFormat {
    public static let magic = Array("IPVOLUME".utf8)
    public static let version: UInt16 = 1
    public static let superblockSize = 16
    public static let recordMagic = Array("PRT1".utf8)
    public static let recordHeaderSize = 32
    public static let alignment = 8
    public static let indexEntrySize = 32
    /// A chunk's largest data: what one record may hold (larger lengths in a header are corruption).
    public static let maxRecordData = 16 << 20

    public static func dataName(_ volume: UInt32) -> String { hex8(volume) + ".dat" }
    /// Appended to a volume's name while compaction writes it; such files are removed at open.
    public static let compactingSuffix = ".compacting"
    public static func indexName(_ volume: UInt32) -> String { hex8(volume) + ".idx" }

    /// The volume number a `.dat` name carries, or nil for other files.
    public static func volume(ofDataFile name: String) -> UInt32? {
        guard name.count == 12, name.hasSuffix(".dat") else { return nil }
        return UInt32(name.prefix(8), radix: 16)
    }

    public static func superblock() -> [UInt8] {
        var bytes = magic
        LittleEndian.append(UInt64(version), size: 2, to: &bytes)
        bytes += [UInt8](repeating: 0, count: superblockSize - bytes.count)
        return bytes
    }

    /// Why `bytes` (a volume's first bytes) is not a superblock of this version, or nil when it is.
    public static func superblockProblem(_ bytes: [UInt8]) -> String? {
        guard bytes.count >= superblockSize else { return "the volume is \(bytes.count) bytes, shorter than its 16-byte superblock" }
        guard Array(bytes[0..<8]) == magic else { return "the volume does not start with IPVOLUME" }
        let found = LittleEndian.load(bytes, at: 8, size: 2)
        guard found == UInt64(version) else { return "the volume's format version is \(found), this build reads \(version)" }
        return nil
    }

    /// The bytes a record takes in a volume, padding included.
    public static func recordSize(dataLength: Int) -> Int {
        let raw = recordHeaderSize + dataLength
        return (raw + alignment - 1) / alignment * alignment
    }

    /// Appends `record`, header and padding, to `bytes` (which must end at a multiple of 8).
    public static func append(_ record: VolumeRecord, to bytes: inout [UInt8]) {
        let start = bytes.count
        bytes += recordMagic
        bytes += [0, 0, 0, 0]  // header crc, below
        LittleEndian.append(record.part.rawValue, size: 8, to: &bytes)
        LittleEndian.append(UInt64(record.chunk), size: 4, to: &bytes)
        bytes += [record.kind.rawValue, 0, 0, 0]
        LittleEndian.append(UInt64(record.data.count), size: 4, to: &bytes)
        LittleEndian.append(UInt64(Checksum.crc32(record.data)), size: 4, to: &bytes)
        LittleEndian.store(UInt64(Checksum.crc32(bytes, start + 8..<start + recordHeaderSize)), size: 4, at: start + 4, in: &bytes)
        bytes += record.data
        bytes += [UInt8](repeating: 0, count: recordSize(dataLength: record.data.count) - recordHeaderSize - record.data.count)
    }

    /// A record header, checked (magic, crc, kind, length); what it says about the record.
    public struct Header: Equatable, Sendable {
        public var part: PartID
        public var chunk: UInt32
        public var kind: RecordKind
        public var length: UInt32
        public var dataChecksum: UInt32
    }

    /// The header in `bytes[offset..<offset + 32]`, or why it is not one.
    public static func header(_ bytes: [UInt8], at offset: Int) -> Result<Header, RecordProblem> {
        guard bytes.count - offset >= recordHeaderSize else { return .failure(.truncated) }
        guard Array(bytes[offset..<offset + 4]) == recordMagic else { return .failure(.damaged("no record magic")) }
        let stored = UInt32(LittleEndian.load(bytes, at: offset + 4, size: 4))
        guard stored == Checksum.crc32(bytes, offset + 8..<offset + recordHeaderSize) else {
            return .failure(.damaged("the record header's checksum does not match"))
        }
        guard let kind = RecordKind(rawValue: bytes[offset + 20]) else { return .failure(.damaged("unknown record kind \(bytes[offset + 20])")) }
        let length = UInt32(LittleEndian.load(bytes, at: offset + 24, size: 4))
        guard length <= maxRecordData else { return .failure(.damaged("a record of \(length) bytes, over the \(maxRecordData)-byte limit")) }
        return .success(Header(
            part: PartID(LittleEndian.load(bytes, at: offset + 8, size: 8)), chunk: UInt32(LittleEndian.load(bytes, at: offset + 16, size: 4)),
            kind: kind, length: length, dataChecksum: UInt32(LittleEndian.load(bytes, at: offset + 28, size: 4))))
    }

    /// Why bytes are not a complete, intact record.
    public enum RecordProblem: Error, Equatable, Sendable, CustomStringConvertible {
        /// The bytes end before the record does: a write that did not finish.
        case truncated
        /// The bytes are there but wrong.
        case damaged(String)

        public var description: String {
            switch self {
            case .truncated: "the bytes end inside a record"
            case .damaged(let why): why
            }
        }
    }

    /// Why `data`, read after the checked `header`, is not the record's data, or nil when it is.
    public static func problem(data: [UInt8], header: Header) -> RecordProblem? {
        guard data.count == Int(header.length) else { return .truncated }
        guard Checksum.crc32(data) == header.dataChecksum else {
            return .damaged("the data checksum of part \(header.part) chunk \(header.chunk) does not match")
        }
        return nil
    }

    public static func append(_ entry: IndexEntry, to bytes: inout [UInt8]) {
        let start = bytes.count
        LittleEndian.append(entry.part.rawValue, size: 8, to: &bytes)
        LittleEndian.append(UInt64(entry.chunk), size: 4, to: &bytes)
        bytes += [entry.kind.rawValue, 0, 0, 0]
        LittleEndian.append(entry.offset, size: 8, to: &bytes)
        LittleEndian.append(UInt64(entry.length), size: 4, to: &bytes)
        LittleEndian.append(UInt64(Checksum.crc32(bytes, start..<start + 28)), size: 4, to: &bytes)
    }

    /// The index entry at `offset` of an index file's bytes, or nil when it is torn or damaged.
    public static func indexEntry(_ bytes: [UInt8], at offset: Int) -> IndexEntry? {
        guard bytes.count - offset >= indexEntrySize,
            UInt32(LittleEndian.load(bytes, at: offset + 28, size: 4)) == Checksum.crc32(bytes, offset..<offset + 28),
            let kind = RecordKind(rawValue: bytes[offset + 12])
        else { return nil }
        return IndexEntry(
            part: PartID(LittleEndian.load(bytes, at: offset, size: 8)), chunk: UInt32(LittleEndian.load(bytes, at: offset + 8, size: 4)),
            kind: kind, offset: LittleEndian.load(bytes, at: offset + 16, size: 8), length: UInt32(LittleEndian.load(bytes, at: offset + 24, size: 4)))
    }

    private static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
