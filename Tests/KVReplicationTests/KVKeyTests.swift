import KVReplication
import Testing

@Suite struct KVKeyTests {
    static let prefix = "key must be a UUID4 like 123e4567-e89b-42d3-a456-426614174000: "

    @Test(arguments: [
        ("123e4567-e89b-42d3-a456-426614174000", "123e4567-e89b-42d3-a456-426614174000"),
        ("123E4567-E89B-42D3-A456-426614174000", "123e4567-e89b-42d3-a456-426614174000"),
        ("AbCdEf01-2345-4789-9abc-DEF012345678", "abcdef01-2345-4789-9abc-def012345678"),
        ("00000000-0000-4000-8000-000000000000", "00000000-0000-4000-8000-000000000000"),
        ("ffffffff-ffff-4fff-bfff-ffffffffffff", "ffffffff-ffff-4fff-bfff-ffffffffffff"),
        ("ffffffff-ffff-4fff-Afff-ffffffffffff", "ffffffff-ffff-4fff-afff-ffffffffffff"),
    ])
    func validKeysAreCanonicalLowercase(text: String, canonical: String) throws {
        #expect(try KVKey(text).text == canonical)
    }

    @Test(arguments: [
        ("", "got an empty string"),
        ("123e4567-e89b-42d3-a456-42661417400", "got 35 characters, expected 36"),
        ("123e4567-e89b-42d3-a456-4266141740000", "got 37 characters, expected 36"),
        ("123e4567e89b-42d3-a456-4266141740000", "expected '-' at position 9, got 'e'"),
        ("123e4567-e89b_42d3-a456-426614174000", "expected '-' at position 14, got '_'"),
        ("123e4567-e89b-42d3-a456 426614174000", "expected '-' at position 24, got ' '"),
        ("123g4567-e89b-42d3-a456-426614174000", "'g' at position 4 is not a hex digit"),
        ("123e4567-e89b-42d3-a456-42661417400Z", "'Z' at position 36 is not a hex digit"),
        ("123e4567-e89b-42d3-a456-42661417400\u{0}", "U+0000 at position 36 is not a hex digit"),
        ("123e4567-e89b-42d3-a456-42661417400é", "U+00E9 at position 36 is not a hex digit"),
        ("123e4567-e89b-42d3-a456-42661417400１", "U+FF11 at position 36 is not a hex digit"),
        ("123e4567-e89b-12d3-a456-426614174000", "version nibble is 1, expected 4"),
        ("123e4567-e89b-F2d3-a456-426614174000", "version nibble is f, expected 4"),
        ("123e4567-e89b-42d3-c456-426614174000", "variant nibble is c, expected 8, 9, a or b"),
        ("123e4567-e89b-42d3-7456-426614174000", "variant nibble is 7, expected 8, 9, a or b"),
    ])
    func invalidKeysSayWhy(text: String, reason: String) {
        #expect(throws: KeyError.self) { try KVKey(text) }
        do {
            _ = try KVKey(text)
        } catch {
            #expect(error.description == Self.prefix + reason)
        }
    }

    /// Every single-character change of a valid key, against the rule written out
    /// plainly: the byte-by-byte path must accept exactly what it allows, and no more.
    @Test func everyOneCharacterChangeIsJudgedByTheRule() {
        let valid = Array("123e4567-e89b-42d3-a456-426614174000".unicodeScalars)
        func allowed(_ scalars: [Unicode.Scalar]) -> Bool {
            let hex = Set("0123456789abcdefABCDEF".unicodeScalars)
            for (index, scalar) in scalars.enumerated() {
                if [8, 13, 18, 23].contains(index) { if scalar != "-" { return false } } else if !hex.contains(scalar) { return false }
            }
            return scalars[14] == "4" && "89abAB".unicodeScalars.contains(scalars[19])
        }
        var checked = 0
        for position in valid.indices {
            for value in UInt32(0)..<128 {
                var scalars = valid
                scalars[position] = Unicode.Scalar(value)!
                let text = String(String.UnicodeScalarView(scalars))
                let key = try? KVKey(text)
                #expect((key != nil) == allowed(scalars), "\(text.debugDescription)")
                if let key { #expect(key.text == text.lowercased()) }
                checked += 1
            }
        }
        #expect(checked == 36 * 128)
    }

    @Test func notAStringSaysWhatItWas() {
        #expect(KeyError.notAString(type: "integer").description == Self.prefix + "got integer, expected a string")
    }

    @Test func errorCasesCarryTheDetails() {
        #expect(throws: KeyError.length(35)) { try KVKey("123e4567-e89b-42d3-a456-42661417400") }
        #expect(throws: KeyError.version("1")) { try KVKey("123e4567-e89b-12d3-a456-426614174000") }
        #expect(throws: KeyError.missingHyphen(position: 19, found: "x")) {
            try KVKey("123e4567-e89b-42d3xa456-426614174000")
        }
    }
}

@Suite struct VersionTests {
    @Test func epochAndCounterRoundTrip() throws {
        let version = try #require(Version(epoch: Epoch(812), counter: 3))
        #expect(version.rawValue == 812 << 32 | 3)
        #expect(version.epoch == Epoch(812))
        #expect(version.counter == 3)
        #expect(version.description == "812.3")
        #expect(Version(epoch: Epoch(UInt64(UInt32.max) + 1), counter: 1) == nil)
    }

    @Test func laterEpochBeatsAnyCounter() throws {
        let old = try #require(Version(epoch: Epoch(5), counter: .max))
        let new = try #require(Version(epoch: Epoch(6), counter: 1))
        #expect(old < new)
        #expect(Version.zero < Version(epoch: Epoch(1), counter: 0)!)
        #expect(Version.zero.epoch == .zero)
    }

    @Test func onlyAHigherVersionSupersedes() throws {
        let v1 = ReplicaRecord(key: "k", version: Version(rawValue: 1), kind: .str, value: [1])
        let v2 = ReplicaRecord.tombstone(key: "k", version: Version(rawValue: 2))
        #expect(v1.supersedes(nil))
        #expect(v2.supersedes(v1))
        #expect(!v1.supersedes(v2))
        #expect(!v1.supersedes(v1))
        #expect(ValueKind.allCases.map(\.rawValue) == [0, 1, 2])
    }
}

@Suite struct QuorumTests {
    @Test(arguments: [(1, 1, 1), (2, 2, 1), (3, 2, 2), (4, 3, 2), (5, 3, 3), (7, 4, 4)])
    func sizes(rf: Int, write: Int, read: Int) {
        let quorum = Quorum(replicationFactor: rf)
        #expect(quorum.write == write)
        #expect(quorum.read == read)
        #expect(quorum.read + quorum.write > rf, "every read set meets every write set")
    }

    @Test func messages() {
        let quorum = Quorum(replicationFactor: 3)
        #expect(quorum.writeRefusal(reachable: 1) == "needs 2 of 3 replicas, 1 reachable")
        #expect(quorum.readRefusal(reachable: 0) == "needs 2 of 3 replicas, 0 reachable")
        #expect(quorum.outcomeUnknown(acknowledged: 1)
            == "needs 2 of 3 acknowledgements, 1 received: may or may not have taken effect")
        #expect(!quorum.canWrite(reachable: 1))
        #expect(quorum.canWrite(reachable: 2))
        #expect(quorum.canRead(reachable: 2))
    }
}
