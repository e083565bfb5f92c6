/// How a file is cut into parts (docs/file-store.md, "Layout"): the file is read
/// in blocks of `dataParts` × `shardBytes` bytes; each block is split into
/// `dataParts` shards of equal size (the first `length % dataParts` one byte
/// longer), shard i goes to part i, and `parityParts` parity shards, coded from
/// the block's shards padded with zeros to the longest, go to the parity parts.
/// So the parts are sent to in parallel as the file streams in, a block is the
/// most the gateway holds, and data parts differ in length by at most one byte.
///
/// Pure arithmetic: no I/O. Chunk n of every part is that part's shard of block n.
public struct StripeLayout: Hashable, Sendable, CustomStringConvertible {
    /// Data parts per file: the assignment's five.
    public static let dataParts = 5
    /// The default shard: 1 MiB, so a block is 5 MiB.
    public static let defaultShardBytes = 1 << 20
    /// The most parity parts a file may have.
    public static let maxParityParts = 4

    public let parityParts: Int
    public let shardBytes: Int

    public init(parityParts: Int, shardBytes: Int = StripeLayout.defaultShardBytes) throws(ErasureError) {
        guard (0...Self.maxParityParts).contains(parityParts) else {
            throw ErasureError("parity parts \(parityParts) is out of range 0...\(Self.maxParityParts)")
        }
        guard (1...(16 << 20)).contains(shardBytes) else {
            throw ErasureError("shard size \(shardBytes) is out of range 1...\(16 << 20) bytes")
        }
        self.parityParts = parityParts
        self.shardBytes = shardBytes
    }

    public var dataParts: Int { Self.dataParts }
    /// Data and parity parts: the distinct nodes a file needs.
    public var parts: Int { Self.dataParts + parityParts }
    public var blockBytes: Int { Self.dataParts * shardBytes }
    public var description: String { "\(Self.dataParts)+\(parityParts) parts, \(shardBytes)-byte shards" }

    /// One block of a file: where it starts and how its shards cut it.
    public struct Block: Hashable, Sendable {
        public let index: Int
        public let offset: Int64
        public let length: Int

        public init(index: Int, offset: Int64, length: Int) {
            self.index = index
            self.offset = offset
            self.length = length
        }

        /// Bytes of the block in data shard `shard` (0..<5), counted from the block's start.
        public func shardRange(_ shard: Int) -> Range<Int> {
            let (quotient, remainder) = length.quotientAndRemainder(dividingBy: StripeLayout.dataParts)
            let start = shard * quotient + min(shard, remainder)
            return start..<(start + quotient + (shard < remainder ? 1 : 0))
        }

        /// The longest shard's length: every parity shard's, and what the others are padded to for coding.
        public var codedShardLength: Int { (length + StripeLayout.dataParts - 1) / StripeLayout.dataParts }
    }

    public func blockCount(fileSize: Int64) -> Int {
        precondition(fileSize >= 0)
        return Int((fileSize + Int64(blockBytes) - 1) / Int64(blockBytes))
    }

    public func block(_ index: Int, fileSize: Int64) -> Block {
        let offset = Int64(index) * Int64(blockBytes)
        precondition(index >= 0 && offset < fileSize, "block \(index) is past the end of a \(fileSize)-byte file")
        return Block(index: index, offset: offset, length: Int(min(Int64(blockBytes), fileSize - offset)))
    }

    /// The blocks holding bytes `range` of the file.
    public func blocks(covering range: Range<Int64>) -> Range<Int> {
        guard !range.isEmpty else { return 0..<0 }
        return Int(range.lowerBound / Int64(blockBytes))..<Int((range.upperBound - 1) / Int64(blockBytes) + 1)
    }

    /// The length of chunk `block` of part `part` (a data part's shard; a parity part's coded length).
    public func chunkLength(part: Int, block index: Int, fileSize: Int64) -> Int {
        let block = block(index, fileSize: fileSize)
        return part < Self.dataParts ? block.shardRange(part).count : block.codedShardLength
    }

    /// The total length of part `part` of a `fileSize`-byte file.
    public func partLength(_ part: Int, fileSize: Int64) -> Int64 {
        let blocks = blockCount(fileSize: fileSize)
        guard blocks > 0 else { return 0 }
        return Int64(blocks - 1) * Int64(shardBytes) + Int64(chunkLength(part: part, block: blocks - 1, fileSize: fileSize))
    }
}

public struct ErasureError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
