import Durability
import Foundation
import Testing
import VolumeStore

@Suite struct VolumeStoreTests {
    /// A fresh directory for one test.
    static func directory() -> String {
        let path = NSTemporaryDirectory() + "volumes-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func bytes(_ count: Int, seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) } }

    /// A part's chunks and its seal.
    static func records(_ part: UInt64, chunks: [[UInt8]]) -> [VolumeRecord] {
        var records = chunks.enumerated().map { VolumeRecord(part: PartID(part), chunk: UInt32($0.offset), kind: .chunk, data: $0.element) }
        var length: [UInt8] = []
        LittleEndian.append(UInt64(chunks.reduce(0) { $0 + $1.count }), size: 8, to: &length)
        records.append(VolumeRecord(part: PartID(part), chunk: UInt32(chunks.count), kind: .seal, data: length))
        return records
    }

    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
    }

    static func appendBytes(_ bytes: [UInt8], to path: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(bytes))
        handle.closeFile()
    }

    static func overwrite(_ path: String, at offset: Int, with bytes: [UInt8]) throws {
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        handle.seek(toFileOffset: UInt64(offset))
        handle.write(Data(bytes))
        handle.closeFile()
    }

    @Test func partsComeBackAfterReopeningByteForByte() throws {
        let directory = Self.directory()
        let first = [Self.bytes(1000, seed: 1), Self.bytes(7, seed: 2), []]
        let second = [Self.bytes(65536, seed: 3)]
        do {
            let store = try VolumeStore(directory: directory)
            try store.append(Self.records(1, chunks: first) + Self.records(2, chunks: second))
        }
        let store = try VolumeStore(directory: directory)
        for (index, chunk) in first.enumerated() { #expect(try store.read(PartID(1), chunk: UInt32(index)) == chunk) }
        #expect(try store.read(PartID(2), chunk: 0) == second[0])
        #expect(store.part(PartID(1))?.sealed?.chunks == 3)
        #expect(store.part(PartID(1))?.sealed?.length == 1007)
        #expect(store.part(PartID(2))?.sealed?.length == 65536)
        #expect(store.usage.parts == 2)
        #expect(store.readOnlyVolumes.isEmpty)
        #expect(throws: VolumeError.self) { try store.read(PartID(3), chunk: 0) }
    }

    @Test func aTombstoneDeletesThePartForGood() throws {
        let directory = Self.directory()
        do {
            let store = try VolumeStore(directory: directory)
            try store.append(Self.records(1, chunks: [Self.bytes(10, seed: 1)]))
            try store.append([VolumeRecord(part: PartID(1), chunk: 0, kind: .tombstone, data: [])])
            #expect(store.part(PartID(1)) == nil)
        }
        let store = try VolumeStore(directory: directory)
        #expect(store.part(PartID(1)) == nil)
        #expect(throws: VolumeError(.notFound, "part 1 has no chunk 0 here")) { try store.read(PartID(1), chunk: 0) }
    }

    @Test func fullVolumesGiveWayToNewOnes() throws {
        let directory = Self.directory()
        do {
            let store = try VolumeStore(directory: directory, volumeBytes: 4096)
            for part in 1...10 { try store.append(Self.records(UInt64(part), chunks: [Self.bytes(1000, seed: UInt8(part))])) }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".dat") }
        #expect(names.count >= 3)
        let store = try VolumeStore(directory: directory, volumeBytes: 4096)
        for part in 1...10 { #expect(try store.read(PartID(UInt64(part)), chunk: 0) == Self.bytes(1000, seed: UInt8(part))) }
    }

    /// A crash after the data's sync but before its index entries were written:
    /// the records are indexed again from the data, and the index rewritten.
    @Test func recordsMissingFromTheIndexAreRecoveredFromTheData() throws {
        let directory = Self.directory()
        do {
            let store = try VolumeStore(directory: directory)
            try store.append(Self.records(1, chunks: [Self.bytes(100, seed: 1)]))
            try store.append(Self.records(2, chunks: [Self.bytes(200, seed: 2)]))
        }
        let index = directory + "/" + VolumeFormat.indexName(1)
        #expect(Self.fileSize(index) == 4 * VolumeFormat.indexEntrySize)
        try DurableFile.truncate(index, to: VolumeFormat.indexEntrySize + 5)  // one entry and a torn one
        let store = try VolumeStore(directory: directory)
        #expect(try store.read(PartID(2), chunk: 0) == Self.bytes(200, seed: 2))
        #expect(store.part(PartID(2))?.sealed?.length == 200)
        #expect(store.readOnlyVolumes.isEmpty)
        #expect(Self.fileSize(index) == 4 * VolumeFormat.indexEntrySize)
    }

    /// Bytes after the last intact record (a torn append, or damage): the volume is
    /// kept exactly as it is, read-only, its records readable, and writes go to a new one.
    @Test func aTornTailMakesTheVolumeReadOnlyAndIsNeverCut() throws {
        let directory = Self.directory()
        do {
            let store = try VolumeStore(directory: directory)
            try store.append(Self.records(1, chunks: [Self.bytes(100, seed: 1)]))
        }
        let data = directory + "/" + VolumeFormat.dataName(1)
        var torn: [UInt8] = []
        VolumeFormat.append(VolumeRecord(part: PartID(2), chunk: 0, kind: .chunk, data: Self.bytes(500, seed: 2)), to: &torn)
        try Self.appendBytes(Array(torn.prefix(300)), to: data)
        let size = Self.fileSize(data)
        let store = try VolumeStore(directory: directory)
        let readOnly = store.readOnlyVolumes
        #expect(readOnly.count == 1 && readOnly.first?.volume == 1)
        #expect(readOnly.first?.reason == "bytes 192..<492 after the last intact record are not a record (the bytes end inside a record); the volume is kept as it is")
        #expect(try store.read(PartID(1), chunk: 0) == Self.bytes(100, seed: 1))
        try store.append(Self.records(3, chunks: [Self.bytes(50, seed: 3)]))
        #expect(try store.read(PartID(3), chunk: 0) == Self.bytes(50, seed: 3))
        #expect(Self.fileSize(directory + "/" + VolumeFormat.dataName(2)) > 0)
        #expect(Self.fileSize(data) == size)
    }

    /// A flipped bit in a chunk is caught on its read, naming the part and chunk.
    @Test func aDamagedChunkFailsItsReadWithAChecksumError() throws {
        let directory = Self.directory()
        let store = try VolumeStore(directory: directory)
        try store.append(Self.records(1, chunks: [Self.bytes(100, seed: 1)]) + Self.records(2, chunks: [Self.bytes(100, seed: 2)]))
        // Part 1's chunk: the first record, its data after the superblock and its header.
        try Self.overwrite(directory + "/" + VolumeFormat.dataName(1), at: 16 + 32 + 10, with: [0xFF])
        #expect(throws: VolumeError(.corrupt, "volume 1 at 16, part 1 chunk 0: the data checksum of part 1 chunk 0 does not match")) {
            try store.read(PartID(1), chunk: 0)
        }
        #expect(try store.read(PartID(2), chunk: 0) == Self.bytes(100, seed: 2))
    }

    /// The last indexed record does not match its entry: read-only at open.
    @Test func aDamagedLastRecordMakesTheVolumeReadOnly() throws {
        let directory = Self.directory()
        do {
            let store = try VolumeStore(directory: directory)
            try store.append([VolumeRecord(part: PartID(1), chunk: 0, kind: .chunk, data: Self.bytes(100, seed: 1))])
        }
        try Self.overwrite(directory + "/" + VolumeFormat.dataName(1), at: 16 + 9, with: [0x55])  // inside the header's part id
        let store = try VolumeStore(directory: directory)
        #expect(store.readOnlyVolumes.map(\.reason)
            == ["the index's last entry (part 1 chunk 0 at 16) does not match the volume: the record header's checksum does not match"])
    }

    @Test func aVolumeOfAnotherFormatIsReadOnly() throws {
        let directory = Self.directory()
        try DurableFile.makeDirectory(directory)
        let file = try DurableFile.create(directory + "/" + VolumeFormat.dataName(1))
        try file.write(Array("IPVOLUME".utf8) + [9, 0, 0, 0, 0, 0, 0, 0])
        let store = try VolumeStore(directory: directory)
        #expect(store.readOnlyVolumes.map(\.reason) == ["the volume's format version is 9, this build reads 1"])
        try store.append(Self.records(1, chunks: [[1, 2, 3]]))
        #expect(try store.read(PartID(1), chunk: 0) == [1, 2, 3])
    }

    /// Malformed records are refused whole, before anything is written: a seal
    /// without its 8-byte length, a record over the size limit.
    @Test func malformedRecordsAreRefusedBeforeAnyIsWritten() throws {
        let store = try VolumeStore(directory: Self.directory())
        let good = VolumeRecord(part: PartID(1), chunk: 0, kind: .chunk, data: [1])
        #expect(throws: VolumeError(.invalid, "the seal of part 2 holds 3 bytes, not its 8-byte length")) {
            try store.append([good, VolumeRecord(part: PartID(2), chunk: 1, kind: .seal, data: [1, 2, 3])])
        }
        let huge = VolumeRecord(part: PartID(3), chunk: 0, kind: .chunk, data: [UInt8](repeating: 0, count: VolumeFormat.maxRecordData + 1))
        #expect(throws: VolumeError(.invalid, "a record of 16777217 bytes exceeds the 16777216-byte limit")) { try store.append([good, huge]) }
        #expect(store.part(PartID(1)) == nil)
        #expect(store.usage.parts == 0)
    }
}
