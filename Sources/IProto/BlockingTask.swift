import Dispatch
import Synchronization

/// Async work started from a thread that is not on Swift's cooperative pool (a
/// server worker running a handler or reply barrier, or the main thread) and
/// waited for there: how synchronous handlers call async clients.
///
/// Start the task, do the thread's own blocking work meanwhile, then ``wait()``.
/// Never wait on the cooperative pool itself, and never block inside the body:
/// the pool has one thread per core, and each blocked one stalls every other
/// task's continuations — the body should only await.
public final class BlockingTask<Success: Sendable, Failure: Error>: Sendable {
    private let result = Mutex<Result<Success, Failure>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    /// Starts `body` on the cooperative pool.
    public init(_ body: @escaping @Sendable () async throws(Failure) -> Success) {
        Task {
            let outcome: Result<Success, Failure>
            do throws(Failure) { outcome = .success(try await body()) } catch { outcome = .failure(error) }
            self.result.withLock { $0 = outcome }
            self.done.signal()
        }
    }

    /// Blocks this thread until the body has finished; its result. Call it once.
    public func wait() throws(Failure) -> Success {
        done.wait()
        return try result.withLock { $0! }.get()
    }

    /// Starts `body` and waits for it.
    public static func run(_ body: @escaping @Sendable () async throws(Failure) -> Success) throws(Failure) -> Success {
        try BlockingTask(body).wait()
    }
}
