import Durability
import Foundation
import IProto
@testable import IProtoStorage
import Testing

/// A fresh directory under the system's temporary one, removed afterwards.
private final class DataDirectory {
    let path = NSTemporaryDirectory() + "iproto-journal-\(UUID().uuidString)"

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func open(_ fsync: FsyncPolicy = .batch, initialState: StorageState = .readWrite) throws -> Storage {
        try Storage(dataDirectory: path, fsync: fsync, initialState: initialState)
    }

    var segments: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix("wal-") }.sorted()
    }

    func size(_ name: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path + "/" + name)[.size] as! Int
    }

    func append(_ bytes: [UInt8], to name: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path + "/" + name))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(bytes))
        try handle.close()
    }

    func flipByte(at offset: Int, in name: String) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path + "/" + name))
        data[offset] ^= 0xff
        try data.write(to: URL(fileURLWithPath: path + "/" + name))
    }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite struct JournalRecoveryTests {
    @Test func committedChangesSurviveReopening() throws {
        let directory = DataDirectory()
        do {
            let storage = try directory.open()
            #expect(storage.recovery?.fresh == true)
            try storage.replace(1, with: bytes("one"))
            try storage.replace(999, with: bytes(String(repeating: "x", count: 256)))
            try storage.replace(1, with: bytes("uno"))
            try storage.switchState(to: .readOnly)
            try storage.commit()
        }
        let reopened = try directory.open()
        #expect(reopened.recovery?.fresh == false)
        #expect(reopened.recovery?.recordsReplayed == 5)  // the initial state, three writes, one switch
        #expect(reopened.state == .readOnly)
        #expect(try reopened.read(1) == bytes("uno"))
        #expect(try reopened.read(999) == bytes(String(repeating: "x", count: 256)))
        #expect(try reopened.read(2) == [])
    }

    /// Changes reach the disk at commit, which runs before their replies are sent: without it nothing was acknowledged.
    @Test func changesAreWrittenAtCommit() throws {
        let directory = DataDirectory()
        let storage = try directory.open()
        try storage.replace(7, with: bytes("pending"))
        #expect(try directory.open().read(7) == [])
        try storage.commit()
        #expect(try directory.open().read(7) == bytes("pending"))
    }

    @Test func alwaysPolicyWritesEachChangeAtOnce() throws {
        let directory = DataDirectory()
        let storage = try directory.open(.always)
        try storage.replace(3, with: bytes("now"))
        try storage.switchState(to: .maintenance)
        let reopened = try directory.open()
        #expect(reopened.state == .maintenance)
        try reopened.switchState(to: .readWrite)
        #expect(try reopened.read(3) == bytes("now"))
    }

    @Test func initialStateAppliesOnlyToANewDirectory() throws {
        let directory = DataDirectory()
        #expect(try directory.open(initialState: .maintenance).state == .maintenance)
        #expect(try directory.open(initialState: .readWrite).state == .maintenance)
    }

    @Test func snapshotReplacesTheLogBeforeIt() throws {
        let directory = DataDirectory()
        do {
            let storage = try directory.open()
            for index in 0..<100 { try storage.replace(index, with: bytes("v\(index)")) }
            try storage.commit()
            try storage.snapshot()
            #expect(storage.journal!.changesSinceSnapshot == 0)
            try storage.replace(5, with: bytes("after"))
            try storage.commit()
        }
        #expect(directory.segments == [JournalFormat.segmentName(firstLSN: 102)])  // only the one after the snapshot
        let reopened = try directory.open()
        #expect(reopened.recovery?.snapshotLSN == 101)
        #expect(reopened.recovery?.recordsReplayed == 1)
        #expect(try reopened.read(5) == bytes("after"))
        #expect(try reopened.read(99) == bytes("v99"))
    }

    @Test(arguments: [[UInt8](repeating: 0, count: 3), [0x20, 0, 0, 0, 1, 2, 3, 4, 5], Array("garbage after a crash".utf8)])
    func tornTailIsTruncatedWithAWarning(tail: [UInt8]) throws {
        let directory = DataDirectory()
        do {
            let storage = try directory.open()
            try storage.replace(1, with: bytes("kept"))
            try storage.commit()
        }
        let segment = directory.segments.last!
        let size = try directory.size(segment)
        try directory.append(tail, to: segment)
        let reopened = try directory.open()
        #expect(try reopened.read(1) == bytes("kept"))
        #expect(reopened.recovery?.truncatedBytes == tail.count)
        #expect(reopened.recovery?.warnings.count == 1)
        #expect(reopened.recovery?.warnings.first?.contains("truncated the log") == true)
        #expect(try directory.size(segment) == size)
    }

    @Test func recordWithABadChecksumEndsTheLog() throws {
        let directory = DataDirectory()
        do {
            let storage = try directory.open()
            try storage.replace(1, with: bytes("first"))
            try storage.replace(2, with: bytes("second"))
            try storage.commit()
        }
        let segment = directory.segments.last!
        try directory.flipByte(at: try directory.size(segment) - 1, in: segment)  // inside "second"
        let reopened = try directory.open()
        #expect(try reopened.read(1) == bytes("first"))
        #expect(try reopened.read(2) == [])
        #expect(reopened.recovery?.warnings.first?.contains("checksum") == true)
    }

    @Test func damagedSnapshotStopsTheStart() throws {
        let directory = DataDirectory()
        do {
            let storage = try directory.open()
            try storage.replace(1, with: bytes("in the snapshot"))
            try storage.snapshot()
        }
        try directory.flipByte(at: 20, in: "snapshot")
        #expect(throws: JournalError.self) { try directory.open() }
        do {
            _ = try directory.open()
        } catch {
            #expect("\(error)".contains("snapshot is damaged (its checksum does not match)"))
        }
    }

    @Test func concurrentWritersAreAllRecovered() async throws {
        let directory = DataDirectory()
        do {
            let storage = try directory.open()
            await withTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        for round in 0..<200 {
                            try? storage.replace(writer * 250 + round % 250, with: bytes("\(writer):\(round)"))
                            if round % 7 == 0 { try? storage.commit() }
                        }
                        try? storage.commit()
                    }
                }
            }
        }
        let reopened = try directory.open()
        #expect(reopened.recovery?.recordsReplayed == 801)
        for writer in 0..<4 {
            #expect(try reopened.read(writer * 250 + 199) == bytes("\(writer):199"))
        }
    }
}

@Suite struct JournalFormatTests {
    @Test func everyCutOfARecordIsInvalidNotACrash() {
        var encoded: [UInt8] = []
        JournalFormat.append(.replace(index: 42, value: bytes("hello")), lsn: 9, to: &encoded)
        #expect(JournalFormat.decodeRecord(encoded, at: 0) == .record(lsn: 9, .replace(index: 42, value: bytes("hello")), next: encoded.count))
        for cut in 1..<encoded.count {
            guard case .invalid = JournalFormat.decodeRecord(Array(encoded.prefix(cut)), at: 0) else {
                Issue.record("a record cut at \(cut) bytes decoded")
                continue
            }
        }
    }

    @Test func stateRecordsRoundTrip() {
        for state in StorageState.allCases {
            var encoded: [UInt8] = []
            JournalFormat.append(.state(state), lsn: 1, to: &encoded)
            #expect(JournalFormat.decodeRecord(encoded, at: 0) == .record(lsn: 1, .state(state), next: encoded.count))
        }
    }

    @Test func snapshotRoundTripsAndRejectsDamage() throws {
        var slots = [[UInt8]](repeating: [], count: Storage.slotCount)
        slots[0] = bytes("zero")
        slots[999] = [UInt8](repeating: 0xff, count: 256)
        let encoded = JournalFormat.encodeSnapshot(lsn: 77, state: .readOnly, slots: slots)
        let decoded = try JournalFormat.decodeSnapshot(encoded).get()
        #expect(decoded.lsn == 77 && decoded.state == .readOnly && decoded.slots == slots)
        for offset in [0, 9, 16, 17, encoded.count - 1] {
            var damaged = encoded
            damaged[offset] ^= 1
            #expect(throws: JournalError.self) { try JournalFormat.decodeSnapshot(damaged).get() }
        }
        #expect(throws: JournalError.self) { try JournalFormat.decodeSnapshot(Array(encoded.dropLast(5))).get() }
    }
}
