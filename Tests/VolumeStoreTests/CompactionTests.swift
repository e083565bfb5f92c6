import Durability
import Foundation
import Testing
import VolumeStore

/// Compaction: what deleted and replaced records take is given back, and nothing
/// current is lost or changed, across reopening and a crash at any step.
@Suite struct CompactionTests {
    typealias Helpers = VolumeStoreTests

    static func tombstone(_ part: UInt64) -> VolumeRecord { VolumeRecord(part: PartID(part), chunk: 0, kind: .tombstone, data: []) }

    static func datFiles(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".dat") }.sorted()
    }

    /// Ten parts in small volumes, the even ones deleted; returns the store and the parts kept.
    static func halfDeleted(_ directory: String) throws -> VolumeStore {
        let store = try VolumeStore(directory: directory, volumeBytes: 8192)
        for part in 1...10 {
            try store.append(Helpers.records(UInt64(part), chunks: [Helpers.bytes(1500, seed: UInt8(part)), Helpers.bytes(700, seed: UInt8(part + 50))]))
        }
        for part in stride(from: 2, through: 10, by: 2) { try store.append([tombstone(UInt64(part))]) }
        return store
    }

    static func expectOddPartsIntact(_ store: VolumeStore) throws {
        for part in stride(from: 1, through: 9, by: 2) {
            #expect(try store.read(PartID(UInt64(part)), chunk: 0) == Helpers.bytes(1500, seed: UInt8(part)))
            #expect(try store.read(PartID(UInt64(part)), chunk: 1) == Helpers.bytes(700, seed: UInt8(part + 50)))
            #expect(store.part(PartID(UInt64(part)))?.sealed?.length == 2200)
        }
        for part in stride(from: 2, through: 10, by: 2) {
            #expect(store.part(PartID(UInt64(part))) == nil)
            #expect(store.isDeleted(PartID(UInt64(part))))
        }
    }

    @Test func deletedPartsAreGarbageAndCompactionGivesTheirBytesBack() throws {
        let directory = Helpers.directory()
        let store = try Self.halfDeleted(directory)
        let chunkBytes = VolumeFormat.recordSize(dataLength: 1500) + VolumeFormat.recordSize(dataLength: 700)
        let partBytes = chunkBytes + VolumeFormat.recordSize(dataLength: 8)
        let garbage = store.volumes.reduce(0) { $0 + $1.garbageBytes }
        #expect(garbage == 5 * partBytes)
        let before = store.usage.usedBytes
        var reclaimed = 0
        for volume in store.volumes where volume.garbageBytes > 0 {
            reclaimed += try store.compact(volume.number).reclaimedBytes
        }
        #expect(reclaimed >= 5 * partBytes)
        #expect(store.usage.usedBytes == before - reclaimed)
        #expect(store.volumes.allSatisfy { $0.garbageBytes == 0 })
        try Self.expectOddPartsIntact(store)
        // Writes go on, into a volume of their own.
        try store.append(Helpers.records(11, chunks: [Helpers.bytes(300, seed: 11)]))
        #expect(try store.read(PartID(11), chunk: 0) == Helpers.bytes(300, seed: 11))

        let reopened = try VolumeStore(directory: directory, volumeBytes: 8192)
        try Self.expectOddPartsIntact(reopened)
        #expect(try reopened.read(PartID(11), chunk: 0) == Helpers.bytes(300, seed: 11))
        #expect(reopened.usage.usedBytes == store.usage.usedBytes)
        #expect(reopened.volumes.allSatisfy { $0.garbageBytes == 0 })
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).allSatisfy { !$0.hasSuffix(VolumeFormat.compactingSuffix) })
    }

    /// A chunk sent twice (a retry) keeps the later copy; the earlier one is garbage.
    @Test func aReplacedChunkIsGarbage() throws {
        let directory = Helpers.directory()
        let store = try VolumeStore(directory: directory)
        try store.append([VolumeRecord(part: PartID(1), chunk: 0, kind: .chunk, data: Helpers.bytes(400, seed: 1))])
        try store.append([VolumeRecord(part: PartID(1), chunk: 0, kind: .chunk, data: Helpers.bytes(400, seed: 2))])
        #expect(store.volumes.map(\.garbageBytes) == [VolumeFormat.recordSize(dataLength: 400)])
        #expect(store.part(PartID(1))?.storedBytes == VolumeFormat.recordSize(dataLength: 400))
        let compaction = try store.compact(1)
        #expect(compaction.into == 2)
        #expect(try store.read(PartID(1), chunk: 0) == Helpers.bytes(400, seed: 2))
        #expect(try Self.datFiles(directory) == [VolumeFormat.dataName(2)])
    }

    /// A volume of nothing but garbage is removed without a copy.
    @Test func aVolumeOfGarbageOnlyIsRemoved() throws {
        let directory = Helpers.directory()
        let store = try VolumeStore(directory: directory, volumeBytes: 4096)
        try store.append(Helpers.records(1, chunks: [Helpers.bytes(4000, seed: 1)]))
        try store.append([Self.tombstone(1)])  // a volume of its own: the first is full
        let compaction = try store.compact(1)
        #expect(compaction.into == nil)
        #expect(try Self.datFiles(directory) == [VolumeFormat.dataName(2)])
        #expect(try VolumeStore(directory: directory).isDeleted(PartID(1)))
    }

    /// The tombstones survive compaction: a deleted part whose records sit in a
    /// volume that was not compacted stays deleted after reopening.
    @Test func tombstonesAreCarriedOverSoDeletedPartsStayDeleted() throws {
        let directory = Helpers.directory()
        let store = try VolumeStore(directory: directory, volumeBytes: 4096)
        try store.append(Helpers.records(1, chunks: [Helpers.bytes(3000, seed: 1)]))  // volume 1
        try store.append(Helpers.records(2, chunks: [Helpers.bytes(3000, seed: 2)]))  // volume 2
        try store.append([Self.tombstone(1)])  // volume 2 too: it has room for 32 bytes
        try store.append([Self.tombstone(2)])
        // Compacting volume 2 drops part 2 and keeps part 1's tombstone; volume 1 is left alone.
        #expect(try store.compact(2).into != nil)
        let reopened = try VolumeStore(directory: directory, volumeBytes: 4096)
        #expect(reopened.part(PartID(1)) == nil)
        #expect(reopened.isDeleted(PartID(1)) && reopened.isDeleted(PartID(2)))
        #expect(throws: VolumeError.self) { try reopened.read(PartID(1), chunk: 0) }
    }

    /// A crash while the copy was written: the temporary file is removed at open, the old volume serves.
    @Test func anUnfinishedCompactionLeavesTheOldVolumeAsItWas() throws {
        let directory = Helpers.directory()
        do { _ = try Self.halfDeleted(directory) }
        let leftover = directory + "/" + VolumeFormat.dataName(99) + VolumeFormat.compactingSuffix
        try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: leftover))
        let store = try VolumeStore(directory: directory, volumeBytes: 8192)
        #expect(!FileManager.default.fileExists(atPath: leftover))
        try Self.expectOddPartsIntact(store)
    }

    /// A crash after the copy was renamed but before the old volume was removed:
    /// both hold the records, the later one counts, and the old one is then all garbage.
    @Test func aCrashBeforeTheOldVolumeIsRemovedLosesNothing() throws {
        let directory = Helpers.directory()
        let store = try Self.halfDeleted(directory)
        let victim = try #require(store.volumes.first { $0.garbageBytes > 0 && $0.liveBytes > 0 })
        let saved = try [VolumeFormat.dataName(victim.number), VolumeFormat.indexName(victim.number)].map {
            ($0, try Data(contentsOf: URL(fileURLWithPath: directory + "/" + $0)))
        }
        _ = try store.compact(victim.number)
        for (name, bytes) in saved { try bytes.write(to: URL(fileURLWithPath: directory + "/" + name)) }

        let reopened = try VolumeStore(directory: directory, volumeBytes: 8192)
        try Self.expectOddPartsIntact(reopened)
        let old = try #require(reopened.volumes.first { $0.number == victim.number })
        #expect(old.liveBytes == 0)
        _ = try reopened.compact(victim.number)
        try Self.expectOddPartsIntact(try VolumeStore(directory: directory, volumeBytes: 8192))
    }

    /// A record that fails its checksum stops the compaction: the volume is kept as it is.
    @Test func aDamagedRecordStopsTheCompactionAndKeepsTheVolume() throws {
        let directory = Helpers.directory()
        let store = try VolumeStore(directory: directory)
        try store.append(Helpers.records(1, chunks: [Helpers.bytes(100, seed: 1)]) + Helpers.records(2, chunks: [Helpers.bytes(100, seed: 2)]))
        try store.append([Self.tombstone(2)])
        try Helpers.overwrite(directory + "/" + VolumeFormat.dataName(1), at: 16 + 32 + 10, with: [0xFF])
        #expect(throws: VolumeError.self) { try store.compact(1) }
        #expect(try Self.datFiles(directory) == [VolumeFormat.dataName(1)])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).allSatisfy { !$0.hasSuffix(VolumeFormat.compactingSuffix) })
        #expect(try VolumeStore(directory: directory).part(PartID(1)) != nil)
    }

    @Test func aReadOnlyVolumeIsNeverCompacted() throws {
        let directory = Helpers.directory()
        do {
            let store = try VolumeStore(directory: directory)
            try store.append(Helpers.records(1, chunks: [Helpers.bytes(100, seed: 1)]))
        }
        try Helpers.appendBytes([1, 2, 3], to: directory + "/" + VolumeFormat.dataName(1))
        let store = try VolumeStore(directory: directory)
        #expect(store.readOnlyVolumes.count == 1)
        #expect(throws: VolumeError.self) { try store.compact(1) }
        #expect(try Self.datFiles(directory) == [VolumeFormat.dataName(1)])
    }

    @Test func thePolicyPicksFullVolumesByTheirShareAndTheFillingOneByAWholeVolume() {
        typealias Summary = VolumeStore.VolumeSummary
        let volumes = [
            Summary(number: 1, recordBytes: 1000, liveBytes: 600, active: false),  // 40 % garbage
            Summary(number: 2, recordBytes: 1000, liveBytes: 800, active: false),  // 20 %
            Summary(number: 3, recordBytes: 1000, liveBytes: 0, active: false, readOnlyReason: "torn"),
            Summary(number: 4, recordBytes: 1000, liveBytes: 500, active: true),  // 500 of a 10,000-byte volume
            Summary(number: 5, recordBytes: 900, liveBytes: 100, active: false),  // 89 %, most garbage first
        ]
        #expect(CompactionPolicy.candidates(volumes, garbageRatio: 0.3, volumeBytes: 10_000) == [5, 1])
        #expect(CompactionPolicy.candidates(volumes, garbageRatio: 0.3, volumeBytes: 1000) == [5, 4, 1])
        #expect(CompactionPolicy.candidates(volumes, garbageRatio: 0.1, volumeBytes: 10_000) == [5, 1, 2])
    }
}
