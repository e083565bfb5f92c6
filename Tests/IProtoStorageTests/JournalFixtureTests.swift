import Foundation
import IProto
@testable import IProtoStorage
import Testing

/// Golden damaged data directories (Fixtures/Journal, made by its generate.py):
/// what opening each must do, with and without --force-recovery.
@Suite struct JournalFixtureTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/Journal")
    static let cases = ((try? FileManager.default.contentsOfDirectory(atPath: fixtures.path)) ?? [])
        .filter { FileManager.default.fileExists(atPath: fixtures.appendingPathComponent("\($0)/expected.json").path) }
        .sorted()

    /// A fresh copy of the case's data directory, removed afterwards.
    private final class Copy {
        let path = NSTemporaryDirectory() + "iproto-fixture-\(UUID().uuidString)"
        init(_ name: String) throws {
            try FileManager.default.copyItem(atPath: JournalFixtureTests.fixtures.appendingPathComponent("\(name)/data").path,
                                             toPath: path)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    private static func expected(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("\(name)/expected.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// Every slot as the fixture's history leaves it, and no other.
    private static func expectSlots(_ storage: Storage, _ slots: [String: String], _ name: String) throws {
        for index in Storage.indices {
            let value = try storage.read(index)
            #expect(value == Array((slots[String(index)] ?? "").utf8), "\(name): slot \(index)")
        }
    }

    @Test func everyKindOfDamageHasAFixture() {
        #expect(Set(Self.cases).isSuperset(of: ["torn-tail", "bit-flip-mid-segment", "bit-flip-last-record", "zeroed-page",
                                                "missing-segment", "damaged-snapshot"]))
    }

    @Test(arguments: cases)
    func openingWithoutForce(name: String) throws {
        let expected = try Self.expected(name)
        let copy = try Copy(name)
        let before = try FileManager.default.contentsOfDirectory(atPath: copy.path).sorted()
        if expected["starts"] as! Bool {
            let storage = try Storage(dataDirectory: copy.path, fsync: .batch)
            let recovery = try #require(storage.recovery)
            #expect(recovery.lastLSN == UInt64(expected["last_lsn"] as! Int))
            #expect(recovery.truncatedBytes == expected["truncated_bytes"] as! Int)
            #expect(recovery.warnings.count == 1)
            #expect(recovery.warnings.first?.contains(expected["warning"] as! String) == true, "\(recovery.warnings)")
            #expect(recovery.movedAsideTo == nil)
            try Self.expectSlots(storage, expected["slots"] as! [String: String], name)
        } else {
            do {
                _ = try Storage(dataDirectory: copy.path, fsync: .batch)
                Issue.record("\(name): opened a damaged directory")
            } catch {
                #expect(error.description.contains(expected["error"] as! String), "\(error)")
                #expect(error.description.contains("--force-recovery"))
                #expect(!error.description.contains("\n"))
                #expect(error.systemReason == nil)
            }
            // Refusing leaves every file as it was.
            #expect(try FileManager.default.contentsOfDirectory(atPath: copy.path).sorted() == before)
        }
    }

    @Test(arguments: cases)
    func openingWithForce(name: String) throws {
        let expected = try Self.expected(name)
        guard let force = expected["force"] as? [String: Any] else { return }  // it starts anyway
        let copy = try Copy(name)
        let original = try FileManager.default.contentsOfDirectory(atPath: copy.path)
            .reduce(into: [String: Data]()) { $0[$1] = FileManager.default.contents(atPath: copy.path + "/" + $1) }
        let storage = try Storage(dataDirectory: copy.path, fsync: .batch, forceRecovery: true)
        let recovery = try #require(storage.recovery)
        #expect(recovery.lastLSN == UInt64(force["last_lsn"] as! Int))
        try Self.expectSlots(storage, force["slots"] as! [String: String], name)
        let aside = try #require(recovery.movedAsideTo)
        #expect(aside.hasPrefix(copy.path + "/damaged-"))
        let moved = try FileManager.default.contentsOfDirectory(atPath: aside).sorted()
        #expect(moved == (force["moved"] as! [String]).sorted())
        // Nothing is lost: a moved file is the original, a cut-off part is the original's tail.
        for file in moved {
            let bytes = try #require(FileManager.default.contents(atPath: aside + "/" + file))
            if let whole = original[file] {
                #expect(bytes == whole, "\(name): \(file) changed when moved")
            } else {
                let source = String(file.prefix { $0 != "." }) + ".log"
                let offset = Int(file.split(separator: "-").last!)!
                let kept = try #require(FileManager.default.contents(atPath: copy.path + "/" + source))
                #expect(kept.count == offset)
                #expect(kept + bytes == original[source], "\(name): \(source) is not its kept part and its moved part")
            }
        }
        // The forced start goes on as an ordinary storage, and a restart needs no force.
        try storage.replace(500, with: Array("after".utf8))
        try storage.commit()
        let reopened = try Storage(dataDirectory: copy.path, fsync: .batch)
        #expect(try reopened.read(500) == Array("after".utf8))
        #expect(reopened.recovery?.warnings == [])
    }
}
