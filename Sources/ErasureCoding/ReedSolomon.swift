/// Reed–Solomon coding over GF(2^8) by Intel ISA-L, with a Cauchy generator so
/// that any `dataShards` of the `dataShards + parityShards` shards rebuild the
/// rest. Safe Swift over the ``ISAL`` boundary; immutable and shareable.
public struct ReedSolomon: Sendable {
    public let dataShards: Int
    public let parityShards: Int
    /// (data + parity) × data, identity on top.
    private let generator: [UInt8]
    private let parityTables: [UInt8]

    public init(dataShards: Int, parityShards: Int) throws(ErasureError) {
        guard dataShards >= 1, parityShards >= 0, dataShards + parityShards <= 255 else {
            throw ErasureError("\(dataShards)+\(parityShards) shards: GF(2^8) codes need 1 or more data shards and at most 255 in all")
        }
        self.dataShards = dataShards
        self.parityShards = parityShards
        generator = ISAL.cauchyMatrix(rows: dataShards + parityShards, columns: dataShards)
        parityTables = ISAL.tables(coefficients: Array(generator[(dataShards * dataShards)...]), sources: dataShards, outputs: parityShards)
    }

    /// The parity shards of one stripe: `stripe` holds the data shards side by
    /// side, each `shardLength` bytes (padded with zeros by the caller).
    public func parity(of stripe: [UInt8], shardLength: Int) -> [[UInt8]] {
        precondition(stripe.count == dataShards * shardLength, "a stripe of \(stripe.count) bytes is not \(dataShards) shards of \(shardLength)")
        return parity(of: (0..<dataShards).map { stripe[($0 * shardLength)..<(($0 + 1) * shardLength)] }, shardLength: shardLength)
    }

    /// The parity shards of the data shards `shards`, each `shardLength` bytes, coded where they lie.
    public func parity(of shards: [ArraySlice<UInt8>], shardLength: Int) -> [[UInt8]] {
        precondition(shards.count == dataShards && shards.allSatisfy { $0.count == shardLength }, "\(shards.count) shards are not \(dataShards) of \(shardLength) bytes")
        guard parityShards > 0, shardLength > 0 else { return Array(repeating: [], count: parityShards) }
        return ISAL.code(tables: parityTables, outputs: parityShards, inputs: shards, length: shardLength)
    }

    /// The parity shards of data shards of `shardLength` or `shardLength - 1` bytes, the
    /// shorter ones coded as if padded with a zero, without padding (copying) any. The
    /// code works on each byte column alone: the shards' common prefix is coded in one
    /// pass and the column of their last bytes in another.
    public func parity(ofUneven shards: [ArraySlice<UInt8>], shardLength: Int) -> [[UInt8]] {
        precondition(shards.count == dataShards && shards.allSatisfy { $0.count == shardLength || $0.count == shardLength - 1 })
        guard parityShards > 0, shardLength > 0 else { return Array(repeating: [], count: parityShards) }
        let prefix = shardLength - 1
        var parity = prefix == 0
            ? Array(repeating: [UInt8](), count: parityShards)
            : ISAL.code(tables: parityTables, outputs: parityShards, inputs: shards.map { $0.prefix(prefix) }, length: prefix, capacity: shardLength)
        let column = ISAL.code(tables: parityTables, outputs: parityShards, inputs: shards.map { $0.count == shardLength ? $0.suffix(1) : [0][...] }, length: 1)
        for index in parity.indices { parity[index].append(column[index][0]) }
        return parity
    }

    /// Every shard of a stripe (data first, then parity) from the ones present:
    /// at least `dataShards` of them, each `shardLength` bytes.
    public func reconstruct(_ shards: [[UInt8]?], shardLength: Int) throws(ErasureError) -> [[UInt8]] {
        precondition(shards.count == dataShards + parityShards)
        let present = shards.indices.filter { shards[$0] != nil }
        guard present.count >= dataShards else {
            throw ErasureError("\(present.count) of \(shards.count) shards are left; rebuilding needs \(dataShards)")
        }
        for index in present where shards[index]!.count != shardLength {
            throw ErasureError("shard \(index) holds \(shards[index]!.count) bytes, not \(shardLength)")
        }
        let missing = shards.indices.filter { shards[$0] == nil }
        guard !missing.isEmpty else { return shards.map { $0! } }
        guard shardLength > 0 else { return shards.map { $0 ?? [] } }

        // The rows of the first dataShards survivors, inverted, map them back to the data.
        let sources = Array(present.prefix(dataShards))
        let chosen = sources.flatMap { generator[($0 * dataShards)..<(($0 + 1) * dataShards)] }
        guard let inverse = ISAL.invert(chosen, size: dataShards) else {
            throw ErasureError("the generator's rows \(sources) are singular")  // impossible for a Cauchy matrix
        }
        var coefficients: [UInt8] = []
        for index in missing {
            if index < dataShards {
                coefficients += inverse[(index * dataShards)..<((index + 1) * dataShards)]
            } else {
                // A parity row applied to the recovered data: the generator's row times the inverse.
                for column in 0..<dataShards {
                    var sum: UInt8 = 0
                    for term in 0..<dataShards {
                        sum ^= ISAL.multiply(generator[index * dataShards + term], inverse[term * dataShards + column])
                    }
                    coefficients.append(sum)
                }
            }
        }
        let tables = ISAL.tables(coefficients: coefficients, sources: dataShards, outputs: missing.count)
        let rebuilt = ISAL.code(tables: tables, outputs: missing.count, inputs: sources.map { shards[$0]![...] }, length: shardLength)
        var result = shards
        for (position, index) in missing.enumerated() { result[index] = rebuilt[position] }
        return result.map { $0! }
    }

    /// Codes a known stripe and rebuilds it from every set of `parityShards`
    /// losses; a server runs this at start so that a broken library (or CPU
    /// dispatch) stops it before it stores unreadable parity.
    public func selfTest() throws(ErasureError) {
        let shardLength = 4099  // odd, to exercise the library's tail handling
        var stripe = [UInt8](repeating: 0, count: dataShards * shardLength)
        var state: UInt32 = 0x9E37_79B9
        for index in stripe.indices {
            state = state &* 1_664_525 &+ 1_013_904_223
            stripe[index] = UInt8(truncatingIfNeeded: state >> 24)
        }
        let data = (0..<dataShards).map { Array(stripe[($0 * shardLength)..<(($0 + 1) * shardLength)]) }
        let all = data + parity(of: stripe, shardLength: shardLength)
        for lost in Self.subsets(of: Array(all.indices), size: parityShards) {
            var damaged: [[UInt8]?] = all
            for index in lost { damaged[index] = nil }
            guard try reconstruct(damaged, shardLength: shardLength) == all else {
                throw ErasureError("self-test: rebuilding without shards \(lost) gave different bytes")
            }
        }
    }

    private static func subsets(of items: [Int], size: Int) -> [[Int]] {
        guard size > 0 else { return [[]] }
        guard items.count >= size else { return [] }
        let first = items[0], rest = Array(items.dropFirst())
        return subsets(of: rest, size: size - 1).map { [first] + $0 } + subsets(of: rest, size: size)
    }
}
