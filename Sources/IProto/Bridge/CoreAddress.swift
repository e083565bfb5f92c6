import CIProtoCore

/// The C core's address parsing and keying, over ``IPAddress``.
enum CoreAddress {
    static func parse(_ text: String) -> IPAddress? {
        var address = iproto_address()
        guard iproto_address_parse(text, &address) == 0 else { return nil }
        return IPAddress(address)
    }

    static func key(_ address: IPAddress, ipv6PrefixLength: Int) -> IPAddress {
        var core = address.core
        var key = iproto_address()
        iproto_address_key(&core, UInt32(clamping: max(0, ipv6PrefixLength)), &key)
        return IPAddress(key)
    }
}

extension IPAddress {
    init(_ core: iproto_address) {
        var high: UInt64 = 0, low: UInt64 = 0
        withUnsafeBytes(of: core.bytes) { bytes in
            for i in 0..<8 {
                high = high << 8 | UInt64(bytes[i])
                low = low << 8 | UInt64(bytes[8 + i])
            }
        }
        self.init(high: high, low: low)
    }

    var core: iproto_address {
        var core = iproto_address()
        withUnsafeMutableBytes(of: &core.bytes) { bytes in
            for i in 0..<8 {
                bytes[i] = UInt8(truncatingIfNeeded: high >> UInt64(56 - 8 * i))
                bytes[8 + i] = UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * i))
            }
        }
        return core
    }
}
