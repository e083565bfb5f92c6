import KVReplication
import Testing

/// A seeded generator, so that "random" keys are the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        return Placement.mix(state)
    }
}

/// `count` UUID4 keys in canonical form from a seeded generator.
func seededKeys(_ count: Int, seed: UInt64 = 11) -> [String] {
    var random = SplitMix64(state: seed)
    let hex = Array("0123456789abcdef")
    return (0..<count).map { _ in
        var digits = (0..<32).map { _ in hex[Int(random.next() & 15)] }
        digits[12] = "4"
        digits[16] = hex[8 + Int(random.next() & 3)]
        let text = String(digits)
        let parts = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { range in
            String(text.dropFirst(range.lowerBound).prefix(range.count))
        }
        return parts.joined(separator: "-")
    }
}

@Suite struct PlacementTests {
    static let five: [NodeID] = ["node-1", "node-2", "node-3", "node-4", "node-5"]
    static let six: [NodeID] = five + ["node-6"]

    @Test func seededKeysAreValidUUID4s() throws {
        for key in seededKeys(100) { #expect(try KVKey(key).text == key) }
    }

    /// Golden values: if any of these change, every cluster's data would move on upgrade.
    @Test func hashIsStable() {
        #expect(Placement.hash("") == 0xcbf2_9ce4_8422_2325)
        #expect(Placement.hash("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(Placement.hash("foobar") == 0x8594_4171_f739_67e8)
        #expect(Placement.mix(0) == 0)
        #expect(Placement.mix(1) == 0x5692_161d_100b_05e5)
    }

    @Test func ownersAreGolden() {
        // Computed independently (a few lines of Python over the same FNV-1a and splitmix64).
        let golden: [(String, [NodeID])] = [
            ("123e4567-e89b-42d3-a456-426614174000", ["node-5", "node-4", "node-1"]),
            ("00000000-0000-4000-8000-000000000000", ["node-3", "node-5", "node-2"]),
            ("ffffffff-ffff-4fff-bfff-ffffffffffff", ["node-5", "node-1", "node-3"]),
            ("6f1c2b9e-3d4a-4b5c-8d7e-9f0a1b2c3d4e", ["node-3", "node-4", "node-5"]),
        ]
        for (key, owners) in golden {
            #expect(Placement.owners(of: key, among: Self.five, count: 3) == owners, "\(key)")
        }
    }

    @Test func ownersDoNotDependOnNodeOrderOrDuplicates() {
        for key in seededKeys(200) {
            let owners = Placement.owners(of: key, among: Self.five, count: 3)
            #expect(Placement.owners(of: key, among: Self.five.reversed(), count: 3) == owners)
            #expect(Placement.owners(of: key, among: Self.five + Self.five, count: 3) == owners)
            #expect(Placement.primary(of: key, among: Self.five) == owners.first)
        }
    }

    @Test(arguments: [0, 1, 3, 5, 7])
    func ownersAreDistinctAndAtMostTheNodes(count: Int) {
        for key in seededKeys(200) {
            let owners = Placement.owners(of: key, among: Self.five, count: count)
            #expect(owners.count == min(count, Self.five.count))
            #expect(Set(owners).count == owners.count)
            let scores = owners.map { Placement.score(of: key, on: $0) }
            #expect(scores == scores.sorted(by: >))
        }
        #expect(Placement.owners(of: seededKeys(1)[0], among: [], count: 3).isEmpty)
    }

    /// Adding a sixth node moves about 1/6 of the primaries (all to the new node), and changes at
    /// most one member of any replica set; `hash mod N` would move about 5/6.
    @Test func addingANodeMovesAboutOneSixth() {
        let keys = seededKeys(10_000)
        var movedPrimaries = 0
        var changedSets = 0
        var movedModN = 0
        for key in keys {
            let before = Placement.owners(of: key, among: Self.five, count: 3)
            let after = Placement.owners(of: key, among: Self.six, count: 3)
            if before[0] != after[0] {
                movedPrimaries += 1
                #expect(after[0] == "node-6", "a primary moves only to the new node")
            }
            let removed = Set(before).subtracting(after)
            let added = Set(after).subtracting(before)
            #expect(removed.count <= 1 && added.count == removed.count)
            #expect(added.isSubset(of: ["node-6"]))
            if !added.isEmpty { changedSets += 1 }

            let hash = Placement.mix(Placement.hash(key))
            if hash % 5 != hash % 6 { movedModN += 1 }
        }
        let fraction = Double(movedPrimaries) / Double(keys.count)
        let setFraction = Double(changedSets) / Double(keys.count)
        let modNFraction = Double(movedModN) / Double(keys.count)
        print("placement 5 → 6 nodes over \(keys.count) keys: rendezvous moved \(movedPrimaries) primaries (\(fraction)),"
            + " changed \(changedSets) replica sets of 3 (\(setFraction)); hash mod N would move \(movedModN) (\(modNFraction))")
        #expect((0.12...0.22).contains(fraction))
        #expect(modNFraction > 0.75)
    }

    @Test func primariesAreEven() {
        let keys = seededKeys(10_000, seed: 12)
        var primaries: [NodeID: Int] = [:]
        for key in keys { primaries[Placement.primary(of: key, among: Self.five)!, default: 0] += 1 }
        let shares = Self.five.map { Double(primaries[$0, default: 0]) / Double(keys.count) }
        print("primary shares over \(keys.count) keys on 5 nodes: \(shares)")
        for share in shares { #expect((0.17...0.23).contains(share)) }
    }
}
