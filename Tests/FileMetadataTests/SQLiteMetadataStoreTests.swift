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
            let parts = try await store.beginUpload(fileID: nil, (0..<6).reversed().map { PendingPart(index: $0, node: "node\($0)", length: 10) })
                .sorted { $0.index < $1.index }
            let fileID = parts[0].fileID
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
        let parts = try await store.beginUpload(fileID: nil, (0..<5).map { PendingPart(index: $0, node: "other\($0)", length: 3) })
        let replacement = FileRecord(name: "file7", fileID: parts[0].fileID, size: 15, etag: "f", created: 1, parityParts: 0, shardBytes: 1024, parts: parts)
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
        ]
        for (sql, arguments) in statements {
            let plan = try await database.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN \(sql)", arguments: arguments).map { $0["detail"] as String }
            }
            let indexed = plan.contains { $0.contains("parts_by_file (file_id=? AND state=?)") }
            #expect(indexed, "\(sql): \(plan)")
        }
    }

    /// An upload takes its ids in the transaction that records it (one sequence, never a
    /// number twice); a commit makes the parts live with their final lengths, or, for an
    /// upload no longer wholly pending, changes nothing at all.
    @Test func uploadsTakeFreshIDsAndCommitWhole() async throws {
        let (store, _) = try await Self.store(files: 2)
        let upload = try await store.beginUpload(fileID: nil, [PendingPart(index: 0, node: "a", length: 5), PendingPart(index: 1, node: "b", length: 5)])
        let copy = try await store.beginUpload(fileID: upload[0].fileID, [PendingPart(index: 1, node: "c", length: 5)])
        #expect(copy[0].fileID == upload[0].fileID)
        let ids = [upload[0].fileID] + (upload + copy).map(\.partID)
        #expect(Set(ids).count == 4)
        #expect(ids.allSatisfy { $0 > 21 })  // the three uploads before took 1...21

        // A commit naming a part of another upload is refused, and rolled back whole: the
        // same upload then commits.
        var finished = upload
        finished[0].length = 3
        finished[1].length = 4
        let other = try await store.beginUpload(fileID: nil, [PendingPart(index: 1, node: "b", length: 4)])
        var wrong = finished
        wrong[1].partID = other[0].partID
        func record(_ parts: [PartRecord]) -> FileRecord {
            FileRecord(name: "f", fileID: parts[0].fileID, size: 7, etag: "e", created: 0, parityParts: 0, shardBytes: 1024, parts: parts)
        }
        await #expect(throws: MetadataError.self) { try await store.commitUpload(record(wrong)) }
        #expect(try await store.file(named: "f") == nil)
        _ = try await store.commitUpload(record(finished))
        #expect(try await store.file(named: "f")?.parts.map(\.length) == [3, 4])

        // Abandoned: nothing appears.
        let abandoned = try await store.beginUpload(fileID: nil, [PendingPart(index: 0, node: "a", length: 5)])
        try await store.abortUpload(fileID: abandoned[0].fileID)
        await #expect(throws: MetadataError.self) {
            try await store.commitUpload(FileRecord(name: "g", fileID: abandoned[0].fileID, size: 5, etag: "e", created: 0, parityParts: 0, shardBytes: 1024, parts: abandoned))
        }
        #expect(try await store.file(named: "g") == nil)
    }
}
