import Synchronization

/// The bytes of blocks all uploads and downloads may hold at once (`--transfer-memory`):
/// a transfer takes a block's share before it reads or fetches the block and gives
/// it back once the block is sent or written, so a thousand concurrent transfers
/// wait their turn (their TCP windows fill and their clients slow down) instead
/// of multiplying the gateway's memory. Waiters are served in arrival order; a
/// request larger than the whole budget is granted once nothing else is held.
final class TransferBudget: Sendable {
    let capacity: Int
    private struct State {
        var available: Int
        var waiters: [(bytes: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let state: Mutex<State>
    /// Called once per acquire that had to wait.
    private let onWait: @Sendable () -> Void

    init(bytes: Int, onWait: @escaping @Sendable () -> Void = {}) {
        capacity = bytes
        state = Mutex(State(available: bytes))
        self.onWait = onWait
    }

    /// Takes `bytes`, waiting until they are free.
    func acquire(_ bytes: Int) async {
        let bytes = min(bytes, capacity)
        let granted = state.withLock { state -> Bool in
            guard state.waiters.isEmpty, state.available >= bytes else { return false }
            state.available -= bytes
            return true
        }
        if granted { return }
        onWait()
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.waiters.isEmpty, state.available >= bytes {
                    state.available -= bytes
                    return true
                }
                state.waiters.append((bytes, continuation))
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Takes `bytes` only if they are free now (a transfer that already holds a block
    /// must not wait for another while holding it: two such could wait on each other).
    func tryAcquire(_ bytes: Int) -> Bool {
        let bytes = min(bytes, capacity)
        return state.withLock { state in
            guard state.waiters.isEmpty, state.available >= bytes else { return false }
            state.available -= bytes
            return true
        }
    }

    func release(_ bytes: Int) {
        let bytes = min(bytes, capacity)
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.available += bytes
            var ready: [CheckedContinuation<Void, Never>] = []
            while let first = state.waiters.first, state.available >= first.bytes {
                state.available -= first.bytes
                ready.append(first.continuation)
                state.waiters.removeFirst()
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    var held: Int { state.withLock { capacity - $0.available } }
}
