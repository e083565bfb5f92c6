/// The storage formats' integers: little-endian, of 1 to 8 bytes.
public enum LittleEndian {
    /// Appends the low `size` bytes of `value`.
    public static func append(_ value: UInt64, size: Int, to bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: size * 8, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> shift)) }
    }

    /// Overwrites `bytes[offset..<offset + size]` with the low `size` bytes of `value`.
    public static func store(_ value: UInt64, size: Int, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<size { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (index * 8)) }
    }

    /// The `size`-byte integer at `offset`; the bytes must be there.
    public static func load(_ bytes: [UInt8], at offset: Int, size: Int) -> UInt64 {
        (0..<size).reduce(0) { $0 | UInt64(bytes[offset + $1]) << ($1 * 8) }
    }
}
