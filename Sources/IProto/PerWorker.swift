import Synchronization

/// One value per server worker, each behind its own lock: a handler and the
/// reply barrier after it run on the same worker, so the lock is never contended
/// except by callers outside the workers. A value need not be Sendable: only
/// the holder of its lock touches it.
public final class PerWorker<Value>: Sendable {
    private final class Slot: Sendable {
        let value: Mutex<Value>
        init(_ value: sending Value) { self.value = Mutex(value) }
    }

    private let slots: [Slot]

    public init(workers: Int, _ make: () -> Value) {
        slots = (0..<workers).map { _ in Slot(make()) }
    }

    public func withLock<Result: Sendable>(_ worker: Int, _ body: (inout sending Value) -> sending Result) -> Result {
        slots[worker].value.withLock(body)
    }
}
