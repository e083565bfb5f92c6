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
}
