import Foundation
import GRDB
import KVReplication
@testable import KVStore
import Testing

/// A fresh directory under the system's temporary one, removed afterwards.
private final class DataDirectory {
    let path = NSTemporaryDirectory() + "kv-store-\(UUID().uuidString)"
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func open() throws -> ReplicaStore { try ReplicaStore(directory: path) }
}

private let keyA = "123e4567-e89b-42d3-a456-426614174000"
private let keyB = "223e4567-e89b-42d3-a456-426614174000"

private func v(_ epoch: UInt64, _ counter: UInt32) -> Version { Version(epoch: Epoch(epoch), counter: counter)! }
private func set(_ key: String, _ version: Version, _ text: String) -> ReplicaRecord {
    ReplicaRecord(key: key, version: version, kind: .str, value: Array(text.utf8))
}

/// Counts the commits on the store's connection. Its callbacks run on that connection's queue
/// only, one at a time, and the test reads `count` after the write has returned.
private final class CommitCounter: TransactionObserver, @unchecked Sendable {
    var count = 0
    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool { true }
    func databaseDidChange(with event: DatabaseEvent) {}
    func databaseDidCommit(_ db: Database) { count += 1 }
    func databaseDidRollback(_ db: Database) {}
}

@Suite struct ReplicaStoreTests {
    @Test func applyThenReadRoundTrips() throws {
        let dir = DataDirectory()
        let store = try dir.open()
        #expect(try store.read(keyA) == nil)
        let records = [
            set(keyA, v(7, 1), "hello"),
            ReplicaRecord(key: keyB, version: v(7, 2), kind: .bin, value: [0, 1, 255]),
        ]
        #expect(try store.apply(records, epoch: Epoch(7)) == 2)
        #expect(try store.read(keyA) == records[0])
        #expect(try store.read(keyB) == records[1])
        #expect(try store.count == 2)
        #expect(try store.bytesOnDisk > 0)
    }

    @Test func opensInWALWithFullSync() throws {
        let dir = DataDirectory()
        let store = try dir.open()
        // The writer's connection: its commits are the ones that must be fsynced.
        let (journalMode, synchronous) = try store.database.writeWithoutTransaction { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous"))
        }
        #expect(journalMode == "wal")
        #expect(synchronous == 2, "2 is FULL")
        #expect(store.path == dir.path + "/kv.sqlite")
    }

    /// Commits leave the write-ahead log alone below the cap (SQLite's default would
    /// checkpoint inside the commit that passes 1,000 pages); `checkpoint()` copies it
    /// into the database file on its own connection, and the records are all there.
    @Test func commitsDoNotCheckpointBelowTheCapAndCheckpointCopiesTheLog() throws {
        let dir = DataDirectory()
        let store = try dir.open()
        let value = [UInt8](repeating: 0x61, count: 4000)
        var keys: [String] = []
        for batch in 0..<400 {
            let records = (0..<10).map { index in
                ReplicaRecord(key: UUID().uuidString.lowercased(), version: v(1, UInt32(batch * 10 + index + 1)), kind: .bin, value: value)
            }
            keys += records.map(\.key)
            try store.apply(records, epoch: Epoch(1))
        }
        let (logPages, checkpointed) = try store.checkpoint()
        #expect(logPages > 1000, "the log holds every commit's pages, more than SQLite's default cap: \(logPages)")
        #expect(logPages < ReplicaStore.autoCheckpointPages)
        #expect(checkpointed == logPages, "nothing reads or writes meanwhile, so all of it is copied")
        #expect(try store.count == 4000)
        #expect(try store.read(keys[2777])?.value == value)
    }

    @Test(arguments: [false, true])
    func higherVersionWinsInAnyOrder(reversed: Bool) throws {
        let dir = DataDirectory()
        let store = try dir.open()
        var writes = [set(keyA, v(3, 1), "one"), set(keyA, v(3, 2), "two"), set(keyA, v(4, 1), "three")]
        if reversed { writes.reverse() }
        for write in writes { try store.apply([write], epoch: Epoch(4)) }
        #expect(try store.read(keyA) == set(keyA, v(4, 1), "three"))
        #expect(try store.apply([set(keyA, v(4, 1), "three")], epoch: Epoch(4)) == 0, "the same write again changes nothing")
        #expect(try store.apply([set(keyA, v(4, 1), "other bytes")], epoch: Epoch(4)) == 0, "an equal version does not replace")
    }

    @Test func tombstoneBeatsOlderValueAndNothingOlderResurrects() throws {
        let dir = DataDirectory()
        let store = try dir.open()
        try store.apply([set(keyA, v(5, 1), "alive")], epoch: Epoch(5))
        #expect(try store.apply([.tombstone(key: keyA, version: v(5, 2))], epoch: Epoch(5)) == 1)
        #expect(try store.read(keyA) == .tombstone(key: keyA, version: v(5, 2)))
        #expect(try store.count == 0)
        #expect(try store.apply([set(keyA, v(5, 1), "alive"), set(keyA, v(4, 9), "older")], epoch: Epoch(5)) == 0)
        #expect(try store.read(keyA)?.kind == .tombstone)
        #expect(try store.apply([set(keyA, v(5, 3), "again")], epoch: Epoch(5)) == 1, "a newer set revives it")
        #expect(try store.read(keyA) == set(keyA, v(5, 3), "again"))
    }

    @Test func staleEpochIsRefusedAndNothingApplied() throws {
        let dir = DataDirectory()
        let store = try dir.open()
        try store.apply([set(keyA, v(9, 1), "nine")], epoch: Epoch(9))
        #expect(throws: StoreError.staleEpoch(have: Epoch(9), got: Epoch(8))) {
            try store.apply([set(keyA, v(8, 5), "eight"), set(keyB, v(8, 6), "eight")], epoch: Epoch(8))
        }
        #expect(try store.read(keyA) == set(keyA, v(9, 1), "nine"))
        #expect(try store.read(keyB) == nil)
        #expect(try store.highestEpoch == Epoch(9))
        #expect(StoreError.staleEpoch(have: Epoch(9), got: Epoch(8)).description == "stale epoch 8: this replica has seen epoch 9")
    }

    @Test func epochIsRaisedOnlyUpAndPersistsAcrossReopen() throws {
        let dir = DataDirectory()
        do {
            let store = try dir.open()
            #expect(try store.highestEpoch == .zero)
            #expect(try store.raiseEpoch(Epoch(12)) == Epoch(12))
            #expect(try store.raiseEpoch(Epoch(10)) == Epoch(12), "lower: not an error, nothing changes")
            try store.apply([], epoch: Epoch(15))
            try store.close()
        }
        let reopened = try dir.open()
        #expect(try reopened.highestEpoch == Epoch(15))
        #expect(throws: StoreError.staleEpoch(have: Epoch(15), got: Epoch(14))) { try reopened.apply([], epoch: Epoch(14)) }
    }

    @Test func dataAndMetaPersistAcrossReopen() throws {
        let dir = DataDirectory()
        do {
            let store = try dir.open()
            try store.apply([set(keyA, v(2, 1), "kept"), .tombstone(key: keyB, version: v(2, 2))], epoch: Epoch(2))
            try store.setMeta("node_id", "node-1")
            try store.setMeta("cluster", "test")
            try store.setMeta("cluster", nil)
            try store.close()
        }
        let reopened = try dir.open()
        #expect(try reopened.read(keyA) == set(keyA, v(2, 1), "kept"))
        #expect(try reopened.read(keyB) == .tombstone(key: keyB, version: v(2, 2)))
        #expect(try reopened.meta("node_id") == "node-1")
        #expect(try reopened.meta("cluster") == nil)
        #expect(throws: StoreError.self) { try reopened.setMeta("highest_epoch", "99") }
    }

    @Test func appliedRecordIsVisibleToASecondInstance() throws {
        let dir = DataDirectory()
        let first = try dir.open()
        let second = try dir.open()
        try first.apply([set(keyA, v(3, 1), "durable")], epoch: Epoch(3))
        #expect(try second.read(keyA) == set(keyA, v(3, 1), "durable"))
        #expect(try second.highestEpoch == Epoch(3))
        #expect(throws: StoreError.staleEpoch(have: Epoch(3), got: Epoch(2))) { try second.apply([], epoch: Epoch(2)) }
    }

    @Test func scanPagesInKeyOrder() throws {
        let dir = DataDirectory()
        let store = try dir.open()
        let keys = (0..<25).map { String(format: "%08x-0000-4000-8000-000000000000", $0 * 7919) }
        try store.apply(keys.shuffled().enumerated().map { set($1, v(1, UInt32($0 + 1)), "x") }, epoch: Epoch(1))
        try store.apply([.tombstone(key: keys[3], version: v(2, 1))], epoch: Epoch(2))
        var seen: [String] = []
        var after = ""
        while true {
            let page = try store.scan(after: after, limit: 10)
            if page.isEmpty { break }
            #expect(page.count <= 10)
            seen += page.map(\.key)
            after = page.last!.key
        }
        #expect(seen == keys.sorted(), "tombstones included")
        #expect(try store.scan(after: keys.sorted()[0], limit: 1).map(\.key) == [keys.sorted()[1]])
        #expect(try store.scan(after: "", limit: 0).isEmpty)
        let records = try store.records(after: "", limit: 100)
        #expect(records.map(\.key) == keys.sorted())
        #expect(records.first { $0.key == keys[3] }?.kind == .tombstone)
        #expect(try store.scan(after: "", limit: 100).map(\.version) == records.map(\.version))
    }

    @Test func versionsCoverExactlyTheRangeAfterThrough() throws {
        let dir = DataDirectory()
        let store = try dir.open()
        let keys = (0..<25).map { String(format: "%08x-0000-4000-8000-000000000000", $0 * 7919) }.sorted()
        try store.apply(keys.enumerated().map { set($1, v(1, UInt32($0 + 1)), "x") }, epoch: Epoch(1))
        try store.apply([.tombstone(key: keys[6], version: v(2, 1))], epoch: Epoch(2))
        let range = try store.versions(after: keys[4], through: keys[9])
        #expect(Set(range.keys) == Set(keys[5...9]), "after is excluded, through included")
        #expect(range[keys[6]] == v(2, 1), "tombstones included, at their version")
        #expect(range[keys[5]] == v(1, 6))
        #expect(try store.versions(after: "", through: keys[0]) == [keys[0]: v(1, 1)])
        #expect(try store.versions(after: keys[24], through: "g").isEmpty)
    }

    @Test func tenThousandRecordsApplyAsOneTransaction() throws {
        let dir = DataDirectory()
        let store = try dir.open()
        let records = (0..<10_000).map { i in
            ReplicaRecord(key: String(format: "%08x-0000-4000-8000-000000000000", i), version: v(1, UInt32(i + 1)),
                          kind: .bin, value: [UInt8](repeating: UInt8(i & 0xff), count: 100))
        }
        let commits = CommitCounter()
        store.database.writeWithoutTransaction { db in db.add(transactionObserver: commits) }
        var changed = 0
        let elapsed = try ContinuousClock().measure { changed = try store.apply(records, epoch: Epoch(1)) }
        #expect(changed == 10_000)
        print("applied 10,000 records in one call: \(elapsed), \(commits.count) commit(s)")
        #expect(commits.count == 1)
        #expect(elapsed < .seconds(10), "one fsynced transaction, not 10,000")
        #expect(try store.count == 10_000)
    }

    @Test func outOfRangeVersionsAndBadTombstonesAreRefused() throws {
        let dir = DataDirectory()
        let store = try dir.open()
        let tooBig = Version(epoch: Epoch(1 << 31), counter: 1)!
        #expect(throws: StoreError.outOfRange(
            "version \(tooBig) of \(keyA) has epoch 2147483648, above the store's maximum 2147483647")) {
            try store.apply([set(keyA, tooBig, "x")], epoch: Epoch(1))
        }
        #expect(throws: StoreError.outOfRange("epoch 2147483648 is above the store's maximum 2147483647")) {
            try store.raiseEpoch(Epoch(1 << 31))
        }
        #expect(throws: StoreError.self) {
            try store.apply([ReplicaRecord(key: keyA, version: v(1, 1), kind: .tombstone, value: [1])], epoch: Epoch(1))
        }
        #expect(try store.read(keyA) == nil)
        let largest = Version(epoch: ReplicaStore.maximumEpoch, counter: .max)!
        try store.apply([set(keyA, largest, "max")], epoch: ReplicaStore.maximumEpoch)
        #expect(try store.read(keyA)?.version == largest)
        #expect(try store.scan(after: "", limit: 1).first?.version == largest)
    }

    /// A full disk is an error with SQLite's message and the file's path, never a crash, and the
    /// failed batch leaves nothing behind. The file's page limit stands in for the disk.
    @Test func diskFullIsAnErrorNotACrash() throws {
        let dir = DataDirectory()
        let store = try dir.open()
        try store.apply([set(keyA, v(1, 1), "before")], epoch: Epoch(1))
        try store.database.writeWithoutTransaction { db in
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count")!
            try db.execute(sql: "PRAGMA max_page_count = \(pages + 2)")
        }
        let big = (0..<200).map { i in
            ReplicaRecord(key: String(format: "%08x-0000-4000-8000-000000000000", i), version: v(1, UInt32(i + 2)),
                          kind: .bin, value: [UInt8](repeating: 7, count: 4096))
        }
        do {
            try store.apply(big, epoch: Epoch(2))
            Issue.record("a batch larger than the file's limit was applied")
        } catch {
            #expect(error.isDiskFull)
            #expect(error.description.contains(store.path))
            #expect(error.description.contains("full"), "SQLite's message: \(error)")
        }
        #expect(try store.highestEpoch == Epoch(1))
        #expect(try store.read(keyA) == set(keyA, v(1, 1), "before"))
        #expect(try store.read(big[0].key) == nil)
    }

    @Test func anUnusableDirectoryIsAnError() throws {
        let dir = DataDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir.path + "/file", contents: Data())
        #expect(throws: StoreError.self) { try ReplicaStore(directory: dir.path + "/file/sub") }
    }
}
