import ErasureCoding
import FilePlacement
import XCTest

/// A cluster simulated by placement alone: each upload's parts are added to the
/// chosen nodes' used bytes, as the gateway records them when a file commits.
private struct Simulation {
    var nodes: [NodeLoad]
    let layout = try! StripeLayout(parityParts: 1)
    var random: UInt64 = 0x1234_5678

    init(nodes count: Int, capacity: Int64 = 1 << 50) {
        nodes = (0..<count).map { NodeLoad(id: "node-\($0)", capacityBytes: capacity, usedBytes: 0) }
    }

    mutating func join(_ count: Int, capacity: Int64 = 1 << 50) {
        let first = nodes.count
        nodes += (first..<(first + count)).map { NodeLoad(id: "node-\($0)", capacityBytes: capacity, usedBytes: 0) }
    }

    /// A size log-uniform in 1 KiB – 64 MiB, from a fixed generator.
    mutating func nextSize() -> Int64 {
        random = random &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let unit = Double(random >> 11) / Double(1 << 53)
        return Int64(pow(2.0, 10 + unit * 16))
    }

    mutating func upload(_ name: String, size: Int64) throws {
        let chosen = try FilePlacement.choose(parts: layout.parts, partBytes: layout.partLength(0, fileSize: size), file: name, among: nodes)
        XCTAssertEqual(Set(chosen).count, layout.parts, "distinct nodes")
        for (part, id) in chosen.enumerated() {
            let index = nodes.firstIndex { $0.id == id }!
            nodes[index].usedBytes += layout.partLength(part, fileSize: size)
        }
    }

    var usedSpread: Double {
        let used = nodes.map(\.usedBytes)
        return Double(used.max()!) / Double(used.min()!)
    }
}

final class FilePlacementTests: XCTestCase {
    /// The target: 1,000 uploads on 6 nodes, max/min used ≤ 1.05; 2 nodes
    /// join and, with no rebalance, 6,000 more uploads bring it to ≤ 1.10.
    func test_01_even_filling_and_catching_up_after_a_join() throws {
        var cluster = Simulation(nodes: 6)
        for n in 0..<1000 { try cluster.upload("file-\(n)", size: cluster.nextSize()) }
        XCTAssertLessThanOrEqual(cluster.usedSpread, 1.05, "after 1,000 uploads on 6 nodes")
        print("placement: max/min used after 1,000 uploads on 6 nodes: \(cluster.usedSpread)")
        cluster.join(2)
        var caughtUpAfter: Int?
        for n in 0..<6000 {
            try cluster.upload("more-\(n)", size: cluster.nextSize())
            if caughtUpAfter == nil, cluster.usedSpread <= 1.10 { caughtUpAfter = n + 1 }
        }
        XCTAssertLessThanOrEqual(cluster.usedSpread, 1.10, "6,000 uploads after 2 nodes joined")
        // The bound: a new node gains one part per upload and an old one 4/6 of one,
        // so the gap of ~1,000 parts closes in about 3,000 uploads; lowest fill reaches it.
        let caught = try XCTUnwrap(caughtUpAfter)
        print("placement: 2 nodes joined; max/min ≤ 1.10 after \(caught) uploads, \(cluster.usedSpread) after 6,000")
        XCTAssertLessThan(caught, 3600, "caught up within ~3,000 uploads, the bound")
    }

    /// Nodes that are behind get every new file until they catch up.
    func test_02_every_node_that_is_behind_is_in_every_new_file() throws {
        var nodes = (0..<8).map { NodeLoad(id: "n\($0)", capacityBytes: 1000, usedBytes: $0 < 6 ? 500 : 0) }
        for n in 0..<10 {
            let chosen = try FilePlacement.choose(parts: 6, partBytes: 10, file: "f\(n)", among: nodes)
            XCTAssertTrue(chosen.contains("n6") && chosen.contains("n7"), "file \(n): \(chosen)")
            for id in chosen { nodes[nodes.firstIndex { $0.id == id }!].usedBytes += 10 }
        }
    }

    /// 16 uploads in flight at once, each reserving its parts: they spread over
    /// all 8 nodes (12 parts each) instead of all landing on the same 6.
    func test_03_concurrent_uploads_see_each_others_reservations() throws {
        let nodes = (0..<8).map { NodeLoad(id: "n\($0)", capacityBytes: 1 << 40, usedBytes: 0) }
        var reservations = Reservations()
        var parts: [String: Int] = [:]
        for n in 0..<16 {
            let chosen = try FilePlacement.choose(parts: 6, partBytes: 1 << 20, file: "f\(n)", among: reservations.applied(to: nodes))
            reservations.reserve(1 << 20, on: chosen)
            for id in chosen { parts[id, default: 0] += 1 }
        }
        XCTAssertEqual(parts.values.sorted(), Array(repeating: 12, count: 8), "\(parts)")
        for n in 0..<8 { XCTAssertEqual(reservations["n\(n)"], 12 << 20) }
        reservations.release(12 << 20, on: (0..<8).map { "n\($0)" })
        XCTAssertEqual(reservations["n0"], 0)
    }

    func test_04_fill_is_relative_to_capacity_and_full_or_dead_nodes_are_skipped() throws {
        let nodes = [
            NodeLoad(id: "big", capacityBytes: 10_000, usedBytes: 2000),  // 20% full
            NodeLoad(id: "small", capacityBytes: 1000, usedBytes: 100),  // 10% full
            NodeLoad(id: "full", capacityBytes: 1000, usedBytes: 995),
            NodeLoad(id: "dead", capacityBytes: 10_000, usedBytes: 0, alive: false),
        ]
        XCTAssertEqual(try FilePlacement.choose(parts: 2, partBytes: 10, file: "f", among: nodes), ["small", "big"])
        XCTAssertThrowsError(try FilePlacement.choose(parts: 3, partBytes: 10, file: "f", among: nodes)) { error in
            XCTAssertEqual("\(error)", "a file needs 3 storage nodes with 10 bytes free and only 2 have them")
        }
        XCTAssertThrowsError(try FilePlacement.choose(parts: 4, partBytes: 1, file: "f", among: nodes)) { error in
            XCTAssertEqual("\(error)", "a file needs 4 storage nodes and 3 of 4 are up")
        }
    }

    /// Equal nodes: the tie-break is the file's rendezvous score, so the choice is
    /// the same for the same inputs and differs between files.
    func test_05_ties_are_broken_deterministically_and_spread_files() throws {
        let nodes = (0..<8).map { NodeLoad(id: "n\($0)", capacityBytes: 1 << 40, usedBytes: 0) }
        let first = try FilePlacement.choose(parts: 6, partBytes: 1, file: "same", among: nodes)
        XCTAssertEqual(try FilePlacement.choose(parts: 6, partBytes: 1, file: "same", among: nodes.reversed()), first)
        let choices = Set(try (0..<20).map { try FilePlacement.choose(parts: 6, partBytes: 1, file: "f\($0)", among: nodes) })
        XCTAssertGreaterThan(choices.count, 5)
    }

    /// Rebalance after a join: moves go from the fullest node to the emptiest,
    /// never two parts of a file on one node, and the spread never grows.
    func test_06_rebalance_reaches_the_target_without_the_spread_ever_growing() throws {
        var cluster = Simulation(nodes: 6)
        var placed: [String: [PlacedPart]] = [:]
        var nextPart: UInt64 = 1
        for file in 0..<500 {
            let size = cluster.nextSize()
            let chosen = try FilePlacement.choose(parts: 6, partBytes: cluster.layout.partLength(0, fileSize: size), file: "f\(file)", among: cluster.nodes)
            for (index, id) in chosen.enumerated() {
                let bytes = cluster.layout.partLength(index, fileSize: size)
                cluster.nodes[cluster.nodes.firstIndex { $0.id == id }!].usedBytes += bytes
                placed[id, default: []].append(PlacedPart(part: nextPart, file: UInt64(file), bytes: bytes))
                nextPart += 1
            }
        }
        cluster.join(2)
        XCTAssertEqual(FilePlacement.spread(cluster.nodes), .infinity)
        var moves = 0
        var worst = Double.infinity
        while let move = FilePlacement.nextMove(nodes: cluster.nodes, parts: placed, target: 1.05) {
            moves += 1
            XCTAssertLessThan(moves, 5000)
            XCTAssertFalse(placed[move.to, default: []].contains { $0.file == move.part.file }, "two parts of a file on one node")
            // The copy lands first: the destination grows while the source still holds the part.
            let to = cluster.nodes.firstIndex { $0.id == move.to }!, from = cluster.nodes.firstIndex { $0.id == move.from }!
            let before = cluster.nodes.map(\.usedBytes).max()!
            cluster.nodes[to].usedBytes += move.part.bytes
            XCTAssertLessThanOrEqual(cluster.nodes.map(\.usedBytes).max()!, before, "the copy raised the maximum")
            cluster.nodes[from].usedBytes -= move.part.bytes
            placed[move.from]!.removeAll { $0.part == move.part.part }
            placed[move.to, default: []].append(move.part)
            if FilePlacement.spread(cluster.nodes) < .infinity {
                XCTAssertLessThanOrEqual(FilePlacement.spread(cluster.nodes), worst + 1e-12, "the spread grew")
                worst = FilePlacement.spread(cluster.nodes)
            }
        }
        XCTAssertLessThanOrEqual(FilePlacement.spread(cluster.nodes), 1.05, "after \(moves) moves")
        print("placement: rebalance after 2 joined: \(moves) moves, max/min \(FilePlacement.spread(cluster.nodes))")
    }
}
