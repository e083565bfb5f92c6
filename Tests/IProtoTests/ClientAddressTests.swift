import Testing
@testable import IProto

/// How a client is keyed (the C core's iproto_address_key).
@Suite struct ClientKeyTests {
    private func key(_ text: String, _ prefix: Int = 64) -> IPAddress {
        IPAddress(text)!.key(ipv6PrefixLength: prefix)
    }

    @Test func ipv6AddressesInOneSlash64ShareAKeyAndOthersDoNot() {
        #expect(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == key("2001:db8:1:2::1"))
        #expect(key("2001:db8:1:2::1") == IPAddress("2001:db8:1:2::"))
        #expect(key("2001:db8:1:2::1") != key("2001:db8:1:3::1"))
    }

    @Test func thePrefixLengthIsHonouredToTheBit() {
        #expect(key("2001:db8::1", 128) != key("2001:db8::2", 128))
        #expect(key("2001:db8:0:ff::", 57) == key("2001:db8:0:80::", 57))  // 0x80 and 0xff share bit 57
        #expect(key("2001:db8:0:ff::", 57) != key("2001:db8:0:7f::", 57))
        #expect(key("2001:db8::1", 1) == key("::1", 1))
        #expect(key("8000::1", 1) != key("::1", 1))
    }

    @Test func ipv4IsKeyedWholeEvenWhenMapped() {
        #expect(key("10.0.0.1") != key("10.0.0.2"))
        #expect(key("10.0.0.1", 1) != key("10.0.0.2", 1))
        #expect(key("::ffff:10.0.0.1") == key("10.0.0.1"))
        #expect(key("10.0.0.1") == IPAddress("10.0.0.1"))
    }

    @Test func onlyNumericAddressesParse() {
        #expect(IPAddress("localhost") == nil)
        #expect(IPAddress("127.0.0.1:80") == nil)
        #expect(IPAddress("[::1]") == nil)
        #expect(IPAddress("127.0.0.1")?.isIPv4 == true)
        #expect(IPAddress("::1")?.isIPv4 == false)
    }

}
