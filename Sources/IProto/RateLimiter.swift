/// A token bucket: `rate` tokens per second refill it up to `burst`; each
/// request takes one. A fresh bucket (all zero) starts full.
struct TokenBucket {
    var tokens: Double = 0
    /// Seconds on the monotonic clock of the last refill; 0 for a fresh bucket.
    var refilledAt: Double = 0

    /// Takes a token if there is one.
    mutating func admit(now: Double, rate: Double, burst: Double) -> Bool {
        if refilledAt == 0 {
            tokens = burst
        } else {
            tokens = min(burst, tokens + (now - refilledAt) * rate)
        }
        refilledAt = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// Lets at most one message per `interval` through and counts what it held back,
/// so an abusive client cannot flood the log.
struct LogThrottle {
    var lastAt: Double = 0
    var suppressed: UInt64 = 0

    /// Returns how many messages were suppressed since the last one let through,
    /// or nil when this one is to be suppressed too.
    mutating func admit(now: Double, interval: Double = 1) -> UInt64? {
        guard lastAt == 0 || now - lastAt >= interval else {
            suppressed += 1
            return nil
        }
        defer { suppressed = 0 }
        lastAt = now
        return suppressed
    }
}
