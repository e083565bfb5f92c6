import Synchronization

/// A token bucket: `rate` tokens per second refill it up to `burst`; each
/// request takes one. A fresh bucket (all zero) starts full.
struct TokenBucket {
    var tokens: Double = 0
    /// Seconds on the monotonic clock of the last refill; 0 for a fresh bucket.
    var refilledAt: Double = 0

    /// Takes a token if there is one. A `now` earlier than the last refill
    /// (another worker's clock reading, taken a moment before) refills nothing.
    mutating func admit(now: Double, rate: Double, burst: Double) -> Bool {
        refill(now: now, rate: rate, burst: burst)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Whether the bucket is full at `now`, i.e. no different from a fresh one.
    func isFull(now: Double, rate: Double, burst: Double) -> Bool {
        var copy = self
        copy.refill(now: now, rate: rate, burst: burst)
        return copy.tokens >= burst
    }

    private mutating func refill(now: Double, rate: Double, burst: Double) {
        if refilledAt == 0 {
            tokens = burst
            refilledAt = now
        } else if now > refilledAt {
            tokens = min(burst, tokens + (now - refilledAt) * rate)
            refilledAt = now
        }
    }
}

/// One token bucket per client key (its address; IPv6 cut to a prefix),
/// shared by all of that client's connections on every worker: the
/// per-connection bucket alone lets a client multiply its rate by opening
/// connections.
///
/// Why shared buckets behind striped locks: per-worker buckets, each at
/// rate / workers, would need no lock, but a client's connections land on
/// whichever worker accepts them, so a client with one connection would get a
/// quarter of its rate with four workers. Instead the buckets live in
/// ``shardCount`` shards chosen by a hash of the key, each under its own mutex.
/// A connection finds its entry once, when it opens, and keeps a handle (shard
/// and slot), so a request costs one uncontended lock and no hashing. Two
/// clients contend only when their keys share a shard; a client's own
/// connections contend with each other, and they are the requests being limited.
///
/// Memory stays bounded by the open connections: an entry lives while its key
/// has connections, and after the last one closes only until its bucket would
/// be full again (at most burst / rate seconds). Freeing it at once would hand a
/// client that closes and reconnects a fresh burst every time. At most
/// ``lingerCap`` such entries per shard wait; past that the oldest goes first.
final class AddressRateLimiter: Sendable {
    static let shardCount = 64
    static let lingerCap = 1024

    private let shards: [Shard]
    private let rate: Double
    private let burst: Double

    init(rate: Double, burst: Int) {
        self.rate = rate
        self.burst = Double(burst)
        shards = (0..<Self.shardCount).map { _ in Shard() }
    }

    /// Counts a connection from `key`; returns its handle (never 0) for ``admit(_:now:)`` and ``close(_:now:)``.
    func open(_ key: IPAddress, now: Double) -> UInt64 {
        let mixed = (key.high &* 0x9E37_79B9_7F4A_7C15 ^ key.low) &* 0xC2B2_AE3D_27D4_EB4F
        let shard = Int(mixed >> 58) % Self.shardCount
        let index = shards[shard].state.withLock { state in
            state.reclaim(now: now, linger: burst / rate, cap: Self.lingerCap)
            return state.open(key)
        }
        return (UInt64(index) << 8 | UInt64(shard)) + 1
    }

    /// Takes a token from the bucket of the connection's client, if there is one.
    func admit(_ handle: UInt64, now: Double) -> Bool {
        let (shard, index) = Self.split(handle)
        return shards[shard].state.withLock { state in
            state.entries[index].bucket.admit(now: now, rate: rate, burst: burst)
        }
    }

    /// Counts the connection as closed.
    func close(_ handle: UInt64, now: Double) {
        let (shard, index) = Self.split(handle)
        shards[shard].state.withLock { state in
            state.close(index, bucketFull: { $0.isFull(now: now, rate: rate, burst: burst) }, now: now)
            state.reclaim(now: now, linger: burst / rate, cap: Self.lingerCap)
        }
    }

    /// Entries held, for tests: clients with connections plus those whose bucket is still refilling.
    var entryCount: Int { shards.reduce(0) { total, shard in total + shard.state.withLock { $0.indexByKey.count } } }

    private static func split(_ handle: UInt64) -> (shard: Int, index: Int) {
        (Int((handle - 1) & 0xff), Int((handle - 1) >> 8))
    }
}

private final class Shard: Sendable {
    let state = Mutex(ShardState())
}

/// One shard's entries; only touched under its shard's lock.
private struct ShardState {
    struct Entry {
        var key: IPAddress
        var connections = 0
        var bucket = TokenBucket()
        /// Changes whenever the entry is freed or gets a connection again, which makes its place in `lingering` stale.
        var generation: UInt32 = 0
    }

    /// Entries by slot; a connection's handle names its slot, which stays put while it is in use.
    var entries: [Entry] = []
    var indexByKey: [IPAddress: Int] = [:]
    var freeSlots: [Int] = []
    /// Entries whose last connection closed while their bucket was short, oldest first, from `lingeringStart` on.
    var lingering: [(index: Int, generation: UInt32, closedAt: Double)] = []
    var lingeringStart = 0

    mutating func open(_ key: IPAddress) -> Int {
        if let index = indexByKey[key] {
            if entries[index].connections == 0 { entries[index].generation &+= 1 }
            entries[index].connections += 1
            return index
        }
        let index: Int
        if let free = freeSlots.popLast() {
            index = free
            entries[index].key = key
            entries[index].bucket = TokenBucket()
        } else {
            index = entries.count
            entries.append(Entry(key: key))
        }
        entries[index].connections = 1
        indexByKey[key] = index
        return index
    }

    mutating func close(_ index: Int, bucketFull: (TokenBucket) -> Bool, now: Double) {
        entries[index].connections -= 1
        guard entries[index].connections == 0 else { return }
        if bucketFull(entries[index].bucket) {
            free(index)
        } else {
            lingering.append((index, entries[index].generation, now))
        }
    }

    /// Frees the lingering entries whose bucket has refilled by `now`, and the oldest past `cap`.
    mutating func reclaim(now: Double, linger: Double, cap: Int) {
        while lingeringStart < lingering.count {
            let oldest = lingering[lingeringStart]
            let current = entries[oldest.index].generation == oldest.generation
            if current && oldest.closedAt + linger > now && lingering.count - lingeringStart <= cap { break }
            if current { free(oldest.index) }
            lingeringStart += 1
        }
        if lingeringStart > 64 && lingeringStart * 2 > lingering.count {
            lingering.removeFirst(lingeringStart)
            lingeringStart = 0
        }
    }

    private mutating func free(_ index: Int) {
        indexByKey[entries[index].key] = nil
        entries[index].generation &+= 1
        freeSlots.append(index)
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
