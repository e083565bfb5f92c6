/// Encodes MessagePack values into a growing byte buffer.
///
/// The dispatcher keeps one writer per worker and resets it between requests,
/// so encoding a response reuses the same storage.
public struct MessagePackWriter: Sendable {
    public internal(set) var bytes: [UInt8]

    /// With ``referencesLargeBinaries`` on, the binaries of ``referencedBinaryBytes`` or
    /// more that were written: where in `bytes` each belongs, and its bytes, kept by
    /// reference instead of copied in (their `bin` headers are in `bytes`).
    public internal(set) var references: [(offset: Int, bytes: [UInt8])] = []
    /// Off by default, so that `bytes` alone is the whole encoding. The server's
    /// per-worker writer turns it on and hands the core the pieces, which copies each
    /// once into the connection's output (a storage node's chunk reply was copied twice).
    var referencesLargeBinaries = false
    static let referencedBinaryBytes = 64 << 10

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    init(capacity: Int, referencingLargeBinaries: Bool) {
        self.init(capacity: capacity)
        referencesLargeBinaries = referencingLargeBinaries
    }

    /// Empties the buffer, keeping its capacity.
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        references.removeAll(keepingCapacity: true)
    }

    public mutating func write(_ value: MessagePackValue) {
        switch value {
        case .nil: encodeNil()
        case .bool(let value): encodeBool(value)
        case .int(let value): encodeInt(value)
        case .uint(let value): encodeUInt(value)
        case .double(let value): encodeDouble(value)
        case .string(let value): writeString(value)
        case .stringBytes(let value): writeString(bytes: value)
        case .binary(let value):
            encodeBinaryHeader(UInt32(value.count))
            if referencesLargeBinaries, value.count >= Self.referencedBinaryBytes {
                references.append((bytes.count, value))
            } else {
                bytes.append(contentsOf: value)
            }
        case .array(let values):
            encodeArrayHeader(UInt32(values.count))
            for element in values { write(element) }
        case .map(let pairs):
            encodeMapHeader(UInt32(pairs.count))
            for pair in pairs {
                write(pair.key)
                write(pair.value)
            }
        }
    }

    /// A `bin` header alone: the caller sends its `count` bytes after these.
    public mutating func writeBinaryHeader(count: Int) { encodeBinaryHeader(UInt32(count)) }

    public mutating func writeString(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            encodeStringHeader(UInt32(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func writeString(bytes value: some Collection<UInt8>) {
        encodeStringHeader(UInt32(value.count))
        bytes.append(contentsOf: value)
    }
}
