import ClusterCoordination
import EtcdClient
import IProto
import KVAPI
import KVReplication
import Metrics
import Synchronization

/// One stretch of leadership: the election win (its revision is the epoch),
/// the lease that holds it, the version counter, and the values the leader
/// knows to be current.
///
/// Every write of the cluster goes through the leader of the current epoch
/// (replicas refuse older epochs), so a value the leader wrote, or read from
/// a quorum and repaired, stays current for the rest of its term: the cache
/// serves such reads without asking replicas. A new term starts empty.
final class LeaderTerm: Sendable {
    let epoch: Epoch
    let key: LeaderKey
    let session: Session
    /// When this node won, by its clock: a peer's silence is counted from here at the earliest.
    let started = ContinuousClock.now
    private let counter = Atomic<UInt32>(0)
    private let cache: Mutex<TermCache>
    /// Counts the entries the cache forgot to stay within `--leader-cache`.
    private let evictions: Counter

    init(key: LeaderKey, session: Session, cacheBytes: Int, evictions: Counter) {
        self.key = key
        epoch = Epoch(UInt64(key.revision.rawValue))
        self.session = session
        cache = Mutex(TermCache(budget: cacheBytes))
        self.evictions = evictions
    }

    /// Whether the lease certainly still holds the election.
    var isHeld: Bool { session.lost == nil && ContinuousClock.now < session.heldUntil }

    /// The next version of this term; the term ends when its 2^32 counters run out.
    func nextVersion() throws(IProtoError) -> Version {
        let counter = counter.add(1, ordering: .relaxed).newValue
        guard counter != 0, let version = Version(epoch: epoch, counter: counter) else {
            throw IProtoError(.kvNoLeader, "leader of epoch \(epoch) ran out of versions; a new election starts")
        }
        return version
    }

    func cached(_ key: String) -> ReplicaRecord? { cache.withLock { $0[key] } }

    /// Remembers `record` unless a newer version of its key is known.
    func remember(_ record: ReplicaRecord) {
        let evicted = cache.withLock { $0.remember(record) }
        if evicted > 0 { evictions.increment(by: evicted) }
    }

    /// Drops what the term knows of `keys`: their next read asks every live replica
    /// again (after a write whose outcome is unknown, or a repair that changed them).
    func forget<S: Sequence<String>>(_ keys: S) {
        cache.withLock { cache in
            for key in keys { cache.forget(key) }
        }
    }

}
