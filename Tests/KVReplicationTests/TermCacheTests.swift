import KVReplication
import Testing

@Suite struct TermCacheTests {
    /// A record of a 36-byte key and `valueBytes` of value, at `version`.
    static func record(_ index: Int, version: UInt64 = 1, valueBytes: Int) -> ReplicaRecord {
        ReplicaRecord(key: "00000000-0000-4000-8000-\(String(index + 100_000_000_000))", version: Version(rawValue: version),
                      kind: .bin, value: [UInt8](repeating: 7, count: valueBytes))
    }

    /// Held bytes never pass the budget; every entry forgotten to keep them there is
    /// counted (what iproto_kv_leader_cache_evictions_total adds up), and what stays is
    /// exactly what was remembered.
    @Test func staysWithinItsBudgetAndCountsWhatItForgets() {
        var cache = TermCache(budget: 1000)
        var evicted = 0
        for index in 0..<100 {
            evicted += cache.remember(Self.record(index, valueBytes: 64))  // 100 bytes each
            #expect(cache.bytes <= 1000)
        }
        #expect(cache.count == 10 && cache.bytes == 1000)
        #expect(evicted == 90)
        for index in 0..<100 {
            if let held = cache[Self.record(index, valueBytes: 0).key] { #expect(held == Self.record(index, valueBytes: 64)) }
        }
    }

    @Test func aNewerVersionReplacesAnOlderOneNeverTheOtherWay() {
        var cache = TermCache(budget: 1 << 20)
        #expect(cache.remember(Self.record(1, version: 5, valueBytes: 10)) == 0)
        #expect(cache.remember(Self.record(1, version: 3, valueBytes: 500)) == 0)
        #expect(cache[Self.record(1, valueBytes: 0).key]?.version == Version(rawValue: 5))
        #expect(cache.bytes == 46)
        #expect(cache.remember(Self.record(1, version: 9, valueBytes: 20)) == 0)
        #expect(cache[Self.record(1, valueBytes: 0).key]?.version == Version(rawValue: 9))
        #expect(cache.bytes == 56, "the replaced value's bytes are no longer counted")
        cache.forget(Self.record(1, valueBytes: 0).key)
        #expect(cache.count == 0 && cache.bytes == 0)
    }

    @Test func aRecordLargerThanTheBudgetIsNotKept() {
        var cache = TermCache(budget: 100)
        #expect(cache.remember(Self.record(1, valueBytes: 10)) == 0)
        #expect(cache.remember(Self.record(2, valueBytes: 200)) >= 1)
        #expect(cache[Self.record(2, valueBytes: 0).key] == nil)
        #expect(cache.bytes <= 100)
    }
}
