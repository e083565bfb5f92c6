import Foundation
import GRDB
import Testing

@testable import FileMetadata

@Suite struct SQLiteMetadataStoreTests {
    /// A store in a fresh directory, with `files` committed files of 6 parts each and one upload left pending.
    private static func store(files: Int) async throws -> (SQLiteMetadataStore, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("metadata-\(UUID().uuidString)").path
        let store = try SQLiteMetadataStore(directory: directory)
        for number in 0...files {
            let ids = try await store.allocateIDs(7)
            let fileID = ids.lowerBound
            let parts = (0..<6).map { PartRecord(partID: fileID + 1 + UInt64($0), fileID: fileID, index: $0, node: "node\($0)", length: 10) }
            try await store.beginUpload(parts.reversed())
            if number == files { break }  // the last upload stays pending
            let record = FileRecord(name: "file\(number)", fileID: fileID, size: 50, etag: "e", created: 0, parityParts: 1, shardBytes: 1024, parts: parts)
            _ = try await store.commitUpload(record)
        }
        return (store, store.path)
    }

    @Test func aFilesPartsComeBackInOrder() async throws {
        let (store, _) = try await Self.store(files: 20)
        let file = try #require(try await store.file(named: "file7"))
        #expect(file.parts.map(\.index) == Array(0..<6))
        #expect(file.parts.allSatisfy { $0.fileID == file.fileID })
        #expect(try await store.file(named: "file20") == nil)  // pending: not visible

        // Replaced: the new upload's parts only, the old ones garbage.
        let ids = try await store.allocateIDs(6)
        let parts = (0..<5).map { PartRecord(partID: ids.lowerBound + 1 + UInt64($0), fileID: ids.lowerBound, index: $0, node: "other\($0)", length: 3) }
        try await store.beginUpload(parts)
        let replacement = FileRecord(name: "file7", fileID: ids.lowerBound, size: 15, etag: "f", created: 1, parityParts: 0, shardBytes: 1024, parts: parts)
        let replaced = try await store.commitUpload(replacement)
        #expect(replaced?.fileID == file.fileID)
        #expect(try await store.file(named: "file7") == replacement)
        let garbage = try await store.garbage(limit: 100).map(\.partID)
        #expect(Set(garbage) == Set(file.parts.map(\.partID)))
    }

    /// Each GET looks a file and its parts up, each commit counts them: through the index on
    /// (file_id, state), not by scanning every part in one state (the plan SQLite chose
    /// while that index covered file_id alone).
    @Test func aFilesPartsAreFoundByIndex() async throws {
        let (_, path) = try await Self.store(files: 50)
        let database = try DatabaseQueue(path: path)
        let statements: [(String, StatementArguments)] = [
            (SQLiteMetadataStore.fileWithPartsSQL, [1, "file7"]), (SQLiteMetadataStore.filePartsSQL, [8, 1]),
            (SQLiteMetadataStore.filePartCountSQL, [8, 1]),
        ]
        for (sql, arguments) in statements {
            let plan = try await database.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN \(sql)", arguments: arguments).map { $0["detail"] as String }
            }
            let indexed = plan.contains { $0.contains("parts_by_file (file_id=? AND state=?)") }
            #expect(indexed, "\(sql): \(plan)")
        }
    }
}
