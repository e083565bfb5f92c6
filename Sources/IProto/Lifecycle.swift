/// Why a server built on the package did not start, by the exit status a supervisor
/// reads to decide whether to try again (sysexits.h; docs/operations.md, "Exit status").
public enum StartFailure: Error, Sendable, CustomStringConvertible {
    /// A flag is wrong or does not fit the cluster: EX_USAGE, 64. Restarting will not help.
    case configuration(String)
    /// The data directory holds damage an operator must look at, or a self-test failed: EX_DATAERR, 65.
    case data(String)
    /// The address, the disk, etcd or another resource failed: EX_UNAVAILABLE, 69. A restart may succeed.
    case environment(String)

    public var description: String {
        switch self {
        case .configuration(let why), .data(let why), .environment(let why): why
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .configuration: 64
        case .data: 65
        case .environment: 69
        }
    }
}

/// Runs `body` every `interval`, measured from the start of one run to the start of the
/// next (a slow run is followed at once by the next one), until the task is cancelled.
public func every(_ interval: Duration, _ body: @Sendable () async -> Void) async {
    while !Task.isCancelled {
        let start = ContinuousClock.now
        await body()
        try? await Task.sleep(until: start + interval)
    }
}
