import ErasureCoding
import XCTest

final class StripeLayoutTests: XCTestCase {
    private let layout = try! StripeLayout(parityParts: 1, shardBytes: 16)  // 80-byte blocks

    /// Every byte of the file lands in exactly one data shard, in order, and the
    /// five data parts differ in length by at most one byte.
    func test_01_shards_tile_the_file_and_parts_are_equal_within_a_byte() {
        for size in [0, 1, 4, 5, 6, 9, 10, 11, 79, 80, 81, 159, 160, 161, 1000, 1001] as [Int64] {
            var covered: [Int64] = []
            for index in 0..<layout.blockCount(fileSize: size) {
                let block = layout.block(index, fileSize: size)
                XCTAssertEqual(block.offset, Int64(index) * 80)
                var next = 0
                for shard in 0..<5 {
                    let range = block.shardRange(shard)
                    XCTAssertEqual(range.lowerBound, next, "size \(size) block \(index) shard \(shard)")
                    XCTAssertLessThanOrEqual(range.count, block.codedShardLength)
                    next = range.upperBound
                    covered += range.map { block.offset + Int64($0) }
                    XCTAssertEqual(layout.chunkLength(part: shard, block: index, fileSize: size), range.count)
                }
                XCTAssertEqual(next, block.length)
                XCTAssertEqual(layout.chunkLength(part: 5, block: index, fileSize: size), block.codedShardLength)
            }
            XCTAssertEqual(covered, Array(0..<size), "size \(size)")
            let lengths = (0..<5).map { layout.partLength($0, fileSize: size) }
            XCTAssertEqual(lengths.reduce(0, +), size, "size \(size)")
            XCTAssertLessThanOrEqual(lengths.max()! - lengths.min()!, 1, "size \(size): \(lengths)")
            XCTAssertEqual(layout.partLength(5, fileSize: size), lengths.max()!, "the parity part is as long as the longest data part")
        }
    }

    func test_02_blocks_covering_a_range() {
        XCTAssertEqual(layout.blocks(covering: 0..<0), 0..<0)
        XCTAssertEqual(layout.blocks(covering: 0..<1), 0..<1)
        XCTAssertEqual(layout.blocks(covering: 79..<81), 0..<2)
        XCTAssertEqual(layout.blocks(covering: 80..<160), 1..<2)
        XCTAssertEqual(layout.blocks(covering: 159..<161), 1..<3)
    }

    func test_03_bad_geometry_is_refused() {
        XCTAssertThrowsError(try StripeLayout(parityParts: -1))
        XCTAssertThrowsError(try StripeLayout(parityParts: StripeLayout.maxParityParts + 1))
        XCTAssertThrowsError(try StripeLayout(parityParts: 1, shardBytes: 0))
        XCTAssertEqual(try StripeLayout(parityParts: 1).blockBytes, 5 << 20)
    }
}

final class ReedSolomonTests: XCTestCase {
    private func stripe(_ shards: Int, _ length: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        return (0..<(shards * length)).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
    }

    /// Any `parity` lost shards, data or parity, come back byte for byte.
    func test_04_every_loss_up_to_the_parity_count_is_rebuilt() throws {
        for parity in 1...3 {
            let code = try ReedSolomon(dataShards: 5, parityShards: parity)
            for length in [1, 7, 64, 1000] {
                let bytes = stripe(5, length, seed: UInt64(parity * 1000 + length))
                let data = (0..<5).map { Array(bytes[($0 * length)..<(($0 + 1) * length)]) }
                let parityShards = code.parity(of: bytes, shardLength: length)
                XCTAssertEqual(parityShards.count, parity)
                XCTAssertTrue(parityShards.allSatisfy { $0.count == length })
                let all = data + parityShards
                for first in 0..<all.count {
                    for second in first..<all.count {
                        var damaged: [[UInt8]?] = all
                        damaged[first] = nil
                        if parity >= 2 { damaged[second] = nil }
                        XCTAssertEqual(try code.reconstruct(damaged, shardLength: length), all, "parity \(parity) length \(length) lost \(first),\(second)")
                    }
                }
            }
        }
    }

    /// Parity is not a copy of the data: one parity shard is the XOR of the data
    /// only by accident of the matrix, so check it against a shard that changed.
    func test_05_parity_depends_on_every_data_byte() throws {
        let code = try ReedSolomon(dataShards: 5, parityShards: 2)
        var bytes = stripe(5, 32, seed: 1)
        let before = code.parity(of: bytes, shardLength: 32)
        for index in [0, 31, 32, 100, 159] {
            bytes[index] ^= 1
            XCTAssertNotEqual(code.parity(of: bytes, shardLength: 32)[0], before[0], "byte \(index)")
            XCTAssertNotEqual(code.parity(of: bytes, shardLength: 32)[1], before[1], "byte \(index)")
            bytes[index] ^= 1
        }
    }

    /// Shards of a short block, up to a byte shorter than the longest, coded without
    /// padding: the same parity as their zero-padded copies', and rebuilt from it.
    func test_05b_uneven_shards_code_as_if_padded() throws {
        for parityShards in 1...3 {
            let code = try ReedSolomon(dataShards: 5, parityShards: parityShards)
            for width in [1, 2, 3, 64, 4099] {
                for long in 1...5 {  // shards 0..<long are `width` bytes, the rest one fewer
                    let bytes = stripe(5, width, seed: UInt64(width * 10 + long))
                    let shards = (0..<5).map { Array(bytes[($0 * width)..<($0 * width + (($0 < long) ? width : width - 1))]) }
                    let padded = shards.map { ($0 + [UInt8](repeating: 0, count: width - $0.count))[...] }
                    let parity = code.parity(ofUneven: shards.map { $0[...] }, shardLength: width)
                    XCTAssertEqual(parity, code.parity(of: padded, shardLength: width), "parity \(parityShards), width \(width), long \(long)")
                    var damaged: [[UInt8]?] = padded.map { Array($0) } + parity
                    damaged[0] = nil
                    XCTAssertEqual(try code.reconstruct(damaged, shardLength: width)[0], Array(padded[0]))
                }
            }
        }
    }

    func test_06_too_many_losses_and_wrong_lengths_are_errors() throws {
        let code = try ReedSolomon(dataShards: 5, parityShards: 1)
        let bytes = stripe(5, 8, seed: 2)
        var shards: [[UInt8]?] = (0..<5).map { Array(bytes[($0 * 8)..<(($0 + 1) * 8)]) } + code.parity(of: bytes, shardLength: 8)
        shards[0] = nil
        shards[3] = nil
        XCTAssertThrowsError(try code.reconstruct(shards, shardLength: 8)) { error in
            XCTAssertEqual("\(error)", "4 of 6 shards are left; rebuilding needs 5")
        }
        shards[0] = [1, 2, 3]
        XCTAssertThrowsError(try code.reconstruct(shards, shardLength: 8))
        XCTAssertThrowsError(try ReedSolomon(dataShards: 0, parityShards: 1))
        XCTAssertThrowsError(try ReedSolomon(dataShards: 200, parityShards: 56))
    }

    func test_07_self_test_passes_for_every_supported_parity() throws {
        for parity in 0...StripeLayout.maxParityParts {
            try ReedSolomon(dataShards: 5, parityShards: parity).selfTest()
        }
    }
}
