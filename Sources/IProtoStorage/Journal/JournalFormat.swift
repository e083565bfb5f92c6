import Durability

/// One change to the storage, as the log records it.
enum JournalRecord: Equatable, Sendable {
    case replace(index: Int, value: [UInt8])
    case state(StorageState)
}

/*
 * The bytes on disk, all integers little-endian.
 *
 * A log segment, wal-<first LSN, 20 digits>.log:
 *
 *     "IPWAL001"  then records:
 *     +------------+-----------+---------+---------------------------------------+
 *     | length u32 | crc32 u32 | lsn u64 | payload (length bytes)                |
 *     +------------+-----------+---------+---------------------------------------+
 *     payload: 1 u8, index u16, value length u16, value   (REPLACE)
 *              2 u8, state u8 (0 read-write, 1 read-only, 2 maintenance)
 *     crc32 covers lsn and payload; LSNs go up by one from record to record.
 *
 * A snapshot, file "snapshot" (written as "snapshot.tmp", synced, renamed):
 *
 *     "IPSNAP01", lsn u64 (the last record it includes), state u8,
 *     1000 × (value length u16, value), crc32 u32 of everything before it.
 */
enum JournalFormat {
    static let segmentMagic = Array("IPWAL001".utf8)
    static let snapshotMagic = Array("IPSNAP01".utf8)
    static let recordHeaderSize = 16
    /// Larger than any record this version writes: a length above it is corruption.
    static let maxPayload = 1 + 2 + 2 + Storage.maxValueBytes

    static let snapshotName = "snapshot"
    /// A snapshot being written; replaces `snapshot` by a rename once synced.
    static let temporarySnapshotName = "snapshot.tmp"
    /// The next log segment, prepared before a switch and renamed to its
    /// `wal-<first LSN>.log` name by it.
    static let preparedSegmentName = "wal-next.tmp"

    static func segmentName(firstLSN: UInt64) -> String {
        let digits = String(firstLSN)
        return "wal-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".log"
    }

    /// The first LSN a segment's file name promises, or nil for other files.
    static func firstLSN(ofSegment name: String) -> UInt64? {
        guard name.hasPrefix("wal-"), name.hasSuffix(".log") else { return nil }
        return UInt64(name.dropFirst(4).dropLast(4))
    }

    static func stateCode(_ state: StorageState) -> UInt8 {
        switch state {
        case .readWrite: 0
        case .readOnly: 1
        case .maintenance: 2
        }
    }

    static func state(code: UInt8) -> StorageState? {
        switch code {
        case 0: .readWrite
        case 1: .readOnly
        case 2: .maintenance
        default: nil
        }
    }

    /// Appends `record` with its header to `bytes`.
    static func append(_ record: JournalRecord, lsn: UInt64, to bytes: inout [UInt8]) {
        let start = bytes.count
        bytes += [0, 0, 0, 0, 0, 0, 0, 0]  // length and crc, filled in below
        LittleEndian.append(lsn, size: 8, to: &bytes)
        switch record {
        case .replace(let index, let value):
            bytes.append(1)
            LittleEndian.append(UInt64(index), size: 2, to: &bytes)
            LittleEndian.append(UInt64(value.count), size: 2, to: &bytes)
            bytes += value
        case .state(let state):
            bytes.append(2)
            bytes.append(stateCode(state))
        }
        let payloadLength = bytes.count - start - recordHeaderSize
        LittleEndian.store(UInt64(payloadLength), size: 4, at: start, in: &bytes)
        LittleEndian.store(UInt64(Checksum.crc32(bytes, start + 8..<bytes.count)), size: 4, at: start + 4, in: &bytes)
    }

    enum Decoded: Equatable {
        case record(lsn: UInt64, JournalRecord, next: Int)
        /// No more bytes.
        case end
        /// Bytes that are not a whole, valid record: a torn write or damage.
        case invalid(String)
    }

    /// The record at `offset` in a segment's bytes.
    static func decodeRecord(_ bytes: [UInt8], at offset: Int) -> Decoded {
        guard offset < bytes.count else { return .end }
        guard bytes.count - offset >= recordHeaderSize else { return .invalid("a partial record header") }
        let length = Int(LittleEndian.load(bytes, at: offset, size: 4))
        guard length <= maxPayload else { return .invalid("a record length of \(length) bytes") }
        let end = offset + recordHeaderSize + length
        guard end <= bytes.count else { return .invalid("a partial record") }
        guard UInt32(LittleEndian.load(bytes, at: offset + 4, size: 4)) == Checksum.crc32(bytes, offset + 8..<end) else {
            return .invalid("a record whose checksum does not match")
        }
        let lsn = LittleEndian.load(bytes, at: offset + 8, size: 8)
        let payload = offset + recordHeaderSize
        switch (length, length > 0 ? bytes[payload] : 0) {
        case (2, 2):
            guard let state = state(code: bytes[payload + 1]) else { return .invalid("an unknown state code") }
            return .record(lsn: lsn, .state(state), next: end)
        case (5..., 1):
            let index = Int(LittleEndian.load(bytes, at: payload + 1, size: 2))
            let count = Int(LittleEndian.load(bytes, at: payload + 3, size: 2))
            guard Storage.indices.contains(index), count == length - 5 else { return .invalid("a malformed REPLACE record") }
            return .record(lsn: lsn, .replace(index: index, value: Array(bytes[payload + 5..<end])), next: end)
        default:
            return .invalid("an unknown record type")
        }
    }

    /// The first offset after `offset` where a whole, valid record with an
    /// LSN of at least `minimumLSN` starts, and that LSN: proof that the log
    /// goes on past damage at `offset`. Candidates are tested cheaply first
    /// (a plausible length and LSN) and only then by their checksum, so a
    /// scan over a segment costs about one pass.
    static func nextValidRecord(_ bytes: [UInt8], after offset: Int, minimumLSN: UInt64) -> (offset: Int, lsn: UInt64)? {
        var candidate = offset + 1
        while bytes.count - candidate >= recordHeaderSize + 2 {
            let length = Int(LittleEndian.load(bytes, at: candidate, size: 4))
            let lsn = LittleEndian.load(bytes, at: candidate + 8, size: 8)
            if length >= 2, length <= maxPayload, candidate + recordHeaderSize + length <= bytes.count,
               lsn >= minimumLSN, lsn - minimumLSN < UInt64(bytes.count),
               case .record = decodeRecord(bytes, at: candidate) {
                return (candidate, lsn)
            }
            candidate += 1
        }
        return nil
    }

    static func encodeSnapshot(lsn: UInt64, state: StorageState, slots: [[UInt8]]) -> [UInt8] {
        var bytes = snapshotMagic
        LittleEndian.append(lsn, size: 8, to: &bytes)
        bytes.append(stateCode(state))
        for value in slots {
            LittleEndian.append(UInt64(value.count), size: 2, to: &bytes)
            bytes += value
        }
        LittleEndian.append(UInt64(Checksum.crc32(bytes, 0..<bytes.count)), size: 4, to: &bytes)
        return bytes
    }

    /// A snapshot's contents, or why the bytes are not one.
    static func decodeSnapshot(_ bytes: [UInt8]) -> Result<(lsn: UInt64, state: StorageState, slots: [[UInt8]]), JournalError> {
        let body = bytes.count - 4
        guard bytes.count >= snapshotMagic.count + 13, bytes.starts(with: snapshotMagic) else {
            return .failure(JournalError("not a snapshot file"))
        }
        guard UInt32(LittleEndian.load(bytes, at: body, size: 4)) == Checksum.crc32(bytes, 0..<body) else {
            return .failure(JournalError("its checksum does not match"))
        }
        let lsn = LittleEndian.load(bytes, at: 8, size: 8)
        guard let state = state(code: bytes[16]) else { return .failure(JournalError("an unknown state code")) }
        var slots: [[UInt8]] = []
        var offset = 17
        while slots.count < Storage.slotCount {
            guard body - offset >= 2 else { return .failure(JournalError("it ends inside slot \(slots.count)")) }
            let count = Int(LittleEndian.load(bytes, at: offset, size: 2))
            offset += 2
            guard count <= Storage.maxValueBytes, body - offset >= count else {
                return .failure(JournalError("slot \(slots.count) is malformed"))
            }
            slots.append(Array(bytes[offset..<offset + count]))
            offset += count
        }
        guard offset == body else { return .failure(JournalError("\(body - offset) bytes follow the last slot")) }
        return .success((lsn, state, slots))
    }
}
