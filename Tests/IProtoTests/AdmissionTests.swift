import Testing
@testable import IProto

@Suite struct TokenBucketTests {
    @Test func freshBucketAllowsTheBurstThenRefuses() {
        var bucket = TokenBucket()
        let admitted = (0..<10).filter { _ in bucket.admit(now: 100, rate: 2, burst: 5) }.count
        #expect(admitted == 5)
    }

    @Test func tokensRefillAtTheRateUpToTheBurst() {
        var bucket = TokenBucket()
        for _ in 0..<5 { _ = bucket.admit(now: 100, rate: 2, burst: 5) }
        let early = bucket.admit(now: 100.4, rate: 2, burst: 5)  // 0.8 tokens
        #expect(!early)
        let onTime = bucket.admit(now: 100.5, rate: 2, burst: 5)  // 1.0 token
        #expect(onTime)
        // A long pause refills only up to the burst.
        let admitted = (0..<10).filter { _ in bucket.admit(now: 1000, rate: 2, burst: 5) }.count
        #expect(admitted == 5)
    }

    @Test func sustainedRateMatchesTheLimit() {
        var bucket = TokenBucket()
        var admitted = 0
        // 1000 requests per second for 10 seconds against 100/s with a burst of 10.
        for tick in 0..<10_000 where bucket.admit(now: 1 + Double(tick) / 1000, rate: 100, burst: 10) {
            admitted += 1
        }
        #expect((1000...1011).contains(admitted))
    }
}

@Suite struct LogThrottleTests {
    @Test func oneMessagePerIntervalWithTheSuppressedCount() {
        var throttle = LogThrottle()
        var results: [UInt64?] = [throttle.admit(now: 10)]
        for offset in 1...9 { results.append(throttle.admit(now: 10 + Double(offset) / 10)) }
        results.append(throttle.admit(now: 11.05))
        results.append(throttle.admit(now: 12.5))
        #expect(results == [0, nil, nil, nil, nil, nil, nil, nil, nil, nil, 9, 0])
    }
}
