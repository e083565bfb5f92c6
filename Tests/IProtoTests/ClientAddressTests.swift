import Testing
@testable import IProto

/// How a client is keyed (the C core's iproto_address_key) and matched against CIDR blocks.
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

    @Test func cidrBlocksContainTheirAddresses() throws {
        let loopback = try #require(CIDR("127.0.0.0/8"))
        #expect(loopback.contains(IPAddress("127.255.0.9")!))
        #expect(!loopback.contains(IPAddress("128.0.0.1")!))
        #expect(!loopback.contains(IPAddress("::1")!))
        let host = try #require(CIDR("127.0.0.1"))
        #expect(host.description == "127.0.0.1/32")
        #expect(host.contains(IPAddress("127.0.0.1")!) && !host.contains(IPAddress("127.0.0.2")!))
        #expect(host.contains(IPAddress("::ffff:127.0.0.1")!), "an IPv4 client on a dual-stack listener")
        let six = try #require(CIDR("::1/128"))
        #expect(six.contains(IPAddress("::1")!) && !six.contains(IPAddress("::2")!))
        #expect(try #require(CIDR("2001:db8::/32")).contains(IPAddress("2001:db8:ffff::1")!))
        #expect(try #require(CIDR("::/0")).contains(IPAddress("192.0.2.1")!), "::/0 admits everybody")
        #expect(try #require(CIDR("0.0.0.0/0")).contains(IPAddress("192.0.2.1")!))
        #expect(!(try #require(CIDR("0.0.0.0/0")).contains(IPAddress("2001:db8::1")!)))
        for invalid in ["127.0.0.0/33", "::/129", "127.0.0.0/-1", "127.0.0.0/", "nonsense/8", "", "10.0.0.0/8/8"] {
            #expect(CIDR(invalid) == nil, "\(invalid)")
        }
    }
}

/// The token buckets shared by all connections of one client address.
@Suite struct AddressRateLimiterTests {
    private let a = IPAddress("192.0.2.1")!
    private let b = IPAddress("192.0.2.2")!

    @Test func connectionsOfOneAddressShareOneBucketAndOtherAddressesHaveTheirOwn() {
        let limiter = AddressRateLimiter(rate: 1, burst: 10)
        let connections = (0..<5).map { _ in limiter.open(a, now: 100) }
        let admitted = (0..<20).filter { i in limiter.admit(connections[i % 5], now: 100) }.count
        #expect(admitted == 10)
        let other = limiter.open(b, now: 100)
        #expect(limiter.admit(other, now: 100))
        #expect(limiter.admit(connections[0], now: 101), "one token a second comes back")
        #expect(!limiter.admit(connections[1], now: 101))
    }

    @Test func reconnectingDoesNotRefillTheBucket() {
        let limiter = AddressRateLimiter(rate: 1, burst: 10)
        let first = limiter.open(a, now: 100)
        for _ in 0..<10 { _ = limiter.admit(first, now: 100) }
        limiter.close(first, now: 100)
        #expect(limiter.entryCount == 1, "kept until its bucket would be full again")
        let again = limiter.open(a, now: 102)
        #expect((0..<10).filter { _ in limiter.admit(again, now: 102) }.count == 2)
    }

    @Test func entriesAreFreedOnceTheirLastConnectionClosedAndTheirBucketRefilled() {
        let limiter = AddressRateLimiter(rate: 1, burst: 10)
        let untouched = limiter.open(b, now: 100)
        let connections = (0..<3).map { _ in limiter.open(a, now: 100) }
        _ = limiter.admit(connections[0], now: 100)
        limiter.close(untouched, now: 100)
        #expect(limiter.entryCount == 1, "a full bucket is freed at its last close")
        for connection in connections { limiter.close(connection, now: 100) }
        #expect(limiter.entryCount == 1, "one token short: kept for a second")
        let later = limiter.open(b, now: 111)  // the next open or close in a shard reclaims; b's shard may differ
        limiter.close(later, now: 111)
        let probe = limiter.open(a, now: 111)
        limiter.close(probe, now: 111)
        #expect(limiter.entryCount == 0)
    }

    @Test func lingeringEntriesAreCappedPerShard() {
        let limiter = AddressRateLimiter(rate: 0.001, burst: 1)
        for i in 0..<(AddressRateLimiter.lingerCap * AddressRateLimiter.shardCount * 2) {
            let address = IPAddress(high: 0x2001_0db8_0000_0000 | UInt64(i), low: 0)
            let connection = limiter.open(address, now: 100)
            _ = limiter.admit(connection, now: 100)
            limiter.close(connection, now: 100)
        }
        #expect(limiter.entryCount <= AddressRateLimiter.lingerCap * AddressRateLimiter.shardCount)
    }
}
