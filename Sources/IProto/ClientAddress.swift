/// A client's IP address as 128 bits: IPv6 as is, IPv4 as `::ffff:a.b.c.d`
/// (so an IPv4 client looks the same on an IPv4 and a dual-stack listener).
public struct IPAddress: Hashable, Sendable {
    /// The first and last 64 bits, most significant first (network order).
    var high: UInt64
    var low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses a numeric IPv4 or IPv6 address (no port, no brackets); nil if `text` is not one.
    public init?(_ text: String) {
        guard let address = CoreAddress.parse(text) else { return nil }
        self = address
    }

    /// True for IPv4 addresses (stored as `::ffff:a.b.c.d`).
    public var isIPv4: Bool { high == 0 && low >> 32 == 0xffff }

    /// The key the server counts and rate limits this client under: IPv4
    /// whole, IPv6 cut to its first `ipv6PrefixLength` bits (see
    /// ``Configuration/ipv6PrefixLength``). The C core's own derivation, so
    /// the two cannot disagree.
    public func key(ipv6PrefixLength: Int) -> IPAddress {
        CoreAddress.key(self, ipv6PrefixLength: ipv6PrefixLength)
    }

    /// Whether the first `bits` bits (0…128) equal `other`'s.
    func sharesPrefix(_ bits: Int, with other: IPAddress) -> Bool {
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? .max : ~(UInt64.max >> UInt64(bits)) }
        return (high ^ other.high) & mask(bits) == 0 && (low ^ other.low) & mask(bits - 64) == 0
    }
}

/// A block of addresses, `address/prefix` (`127.0.0.0/8`, `::1/128`); a
/// bare address is the block of that address alone.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    /// The first address of the block.
    public let address: IPAddress
    /// Leading bits that every address in the block shares: 0…32 for IPv4, 0…128 for IPv6.
    public let prefixLength: Int

    /// Parses `address/prefix` or a bare address; nil if `text` is neither.
    /// Bits of the address past the prefix are ignored.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let width = address.isIPv4 ? 32 : 128
        let prefix = parts.count == 2 ? Int(parts[1]) : width
        guard let prefix, (0...width).contains(prefix) else { return nil }
        self.address = address
        self.prefixLength = prefix
        self.text = "\(parts[0])/\(prefix)"
    }

    private let text: String

    /// The block as written, with its prefix length: `127.0.0.1/32` for `127.0.0.1`.
    public var description: String { text }

    /// Whether `address` is in the block. An IPv4 block holds only IPv4 addresses.
    public func contains(_ address: IPAddress) -> Bool {
        let ipv4 = self.address.isIPv4
        guard address.isIPv4 == ipv4 || (!ipv4 && prefixLength <= 96) else { return false }
        return address.sharesPrefix(ipv4 ? prefixLength + 96 : prefixLength, with: self.address)
    }
}
