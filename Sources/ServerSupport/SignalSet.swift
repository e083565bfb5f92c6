#if canImport(Glibc)
import Glibc
#endif

/// Signals the process handles by waiting for them on one thread (sigwait),
/// instead of in an asynchronous handler.
public struct SignalSet {
    private var set = sigset_t()

    public init(_ signals: [Int32]) {
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
    }

    /// Blocks the signals in this thread and in every thread started after this call.
    public func block() {
        var set = set
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for one of the signals and returns its number.
    public func wait() -> Int32 {
        var set = set
        var signal: Int32 = 0
        sigwait(&set, &signal)
        return signal
    }
}
