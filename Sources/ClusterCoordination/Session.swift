import EtcdClient
import Logging
import Synchronization

/// A lease kept alive: the liveness of one process as etcd sees it.
///
/// The lease is renewed every TTL/3, one request per renewal (the JSON gateway
/// cannot stream keepalives). What a holder may do rests on one bound:
/// etcd expires the lease no earlier than TTL after it processed the last
/// renewal, which it did after this process *sent* it. So the lease is
/// certainly held until `sent + TTL` by etcd's clock; ``heldUntil`` takes a
/// margin off that for clocks whose rates differ (``maxClockDrift``) and for
/// scheduling delays (``margin``). A leader that stops serving at ``heldUntil``
/// has stopped before etcd can hand its election to anyone else.
public final class Session: Sendable {
    public let lease: LeaseID
    /// The TTL etcd granted, which may exceed the one asked for.
    public let ttl: Duration
    /// How much faster etcd's clock may run than ours, as a fraction (docs/cluster.md, "Assumptions").
    public static let maxClockDrift = 0.01

    private struct State {
        var lastRenewalSent: ContinuousClock.Instant
        var lost: String?
    }

    private let etcd: EtcdClient
    private let state: Mutex<State>
    private let renewing = Mutex<Task<Void, Never>?>(nil)
    private let logger: Logger

    private init(etcd: EtcdClient, lease: LeaseID, ttl: Duration, sent: ContinuousClock.Instant, logger: Logger) {
        self.etcd = etcd
        self.lease = lease
        self.ttl = ttl
        self.logger = logger
        state = Mutex(State(lastRenewalSent: sent))
    }

    /// Grants a lease of `ttl` seconds and starts renewing it.
    public static func open(etcd: EtcdClient, ttl seconds: Int, logger: Logger) async throws(EtcdError) -> Session {
        let sent = ContinuousClock.now
        let (lease, granted) = try await etcd.grantLease(ttl: seconds)
        let session = Session(etcd: etcd, lease: lease, ttl: .seconds(granted), sent: sent, logger: logger)
        session.renewing.withLock { $0 = Task { await session.renew() } }
        return session
    }

    /// The safety margin taken off the lease for scheduling delays: a fifth of the TTL.
    public var margin: Duration { ttl / 5 }

    /// Until when this process certainly holds the lease, by its own clock.
    public var heldUntil: ContinuousClock.Instant {
        let sent = state.withLock { $0.lastRenewalSent }
        return sent + ttl * (1 - Self.maxClockDrift) - margin
    }

    /// Why the lease is gone (expired, revoked, or not renewed in time), or nil while it is held.
    public var lost: String? {
        let (lost, sent) = state.withLock { ($0.lost, $0.lastRenewalSent) }
        if let lost { return lost }
        if ContinuousClock.now >= sent + ttl * (1 - Self.maxClockDrift) - margin {
            return "lease \(lease) not renewed for \(ContinuousClock.now - sent)"
        }
        return nil
    }

    /// Stops renewing; with `revoke`, deletes the lease and every key attached to it
    /// (a resigning leader's successor is elected at once instead of after the TTL).
    public func close(revoke: Bool) async {
        renewing.withLock { $0?.cancel() }
        state.withLock { if $0.lost == nil { $0.lost = "session closed" } }
        if revoke { try? await etcd.revoke(lease) }
    }

    private func renew() async {
        let interval = ttl / 3
        while !Task.isCancelled {
            let sent = ContinuousClock.now
            do {
                _ = try await etcd.keepAlive(lease)
                state.withLock { $0.lastRenewalSent = max($0.lastRenewalSent, sent) }
                try? await Task.sleep(until: sent + interval)
            } catch .leaseNotFound {
                state.withLock { $0.lost = "lease \(lease) expired" }
                logger.warning("etcd lease expired", metadata: ["lease": "\(lease)"])
                return
            } catch {
                // Retry soon: the lease may still be alive, and every renewal
                // that gets through moves heldUntil.
                logger.debug("lease renewal failed", metadata: ["error": "\(error)"])
                if ContinuousClock.now >= state.withLock({ $0.lastRenewalSent }) + ttl {
                    state.withLock { $0.lost = "lease \(lease) not renewed within its TTL: \(error)" }
                    return
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }
}
