import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The process's open-file limit (RLIMIT_NOFILE). Each connection takes a
/// descriptor; past the limit accept() fails and clients wait in the kernel's
/// queue, so iprotod raises the soft limit as far as it may and says when
/// --max-connections cannot fit.
struct FileDescriptorLimit {
    /// Descriptors kept for everything but connections: the listening and
    /// metrics sockets, the journal's files, event loops, scrapes in progress.
    static let reserve = 64

    /// The soft limit before and after raising it.
    let before: UInt64
    let current: UInt64
    let hard: UInt64
    /// Why the soft limit could not be raised, if it could not.
    let failure: String?

    /// Raises the soft limit to the hard one (the library leaves process limits alone; the program decides).
    static func raiseToHardLimit() -> FileDescriptorLimit {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else {
            return FileDescriptorLimit(before: 0, current: 0, hard: 0, failure: String(cString: strerror(errno)))
        }
        let before = UInt64(limit.rlim_cur)
        guard limit.rlim_cur < limit.rlim_max else {
            return FileDescriptorLimit(before: before, current: before, hard: UInt64(limit.rlim_max), failure: nil)
        }
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        guard setrlimit(resource, &raised) == 0 else {
            return FileDescriptorLimit(before: before, current: before, hard: UInt64(limit.rlim_max),
                                       failure: String(cString: strerror(errno)))
        }
        return FileDescriptorLimit(before: before, current: UInt64(limit.rlim_max), hard: UInt64(limit.rlim_max), failure: nil)
    }

    /// Logs what was raised, and warns when `maxConnections` plus the reserve does not fit.
    func check(maxConnections: Int, logger: Logger) {
        if let failure {
            logger.warning("cannot raise the open-file limit", metadata: ["soft": "\(before)", "hard": "\(hard)", "error": "\(failure)"])
        } else if current > before {
            logger.debug("raised the open-file limit to the hard limit", metadata: ["from": "\(before)", "to": "\(current)"])
        }
        guard current > 0, UInt64(maxConnections) + UInt64(Self.reserve) > current else { return }
        logger.warning("--max-connections plus a reserve exceeds the open-file limit; connections past it will wait in the kernel's queue", metadata: [
            "max_connections": "\(maxConnections)", "reserve": "\(Self.reserve)", "open_file_limit": "\(current)",
        ])
    }
}
