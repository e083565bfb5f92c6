import CEpoll
#if canImport(Glibc)
import Glibc
#endif

/// Readiness of many non-blocking ``PipelinedConnection``s, over epoll: how
/// one thread drives all its connections, as a load generator should, rather
/// than one blocked thread per connection.
public final class Poller {
    private let fd: Int32
    private var events = [epoll_event](repeating: epoll_event(), count: 256)

    public init() throws(ClientError) {
        fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw .connectionFailed("epoll_create1: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Watches `connection` for input, and for room to write while `writable`;
    /// readiness is reported with `token`.
    public func watch(_ connection: PipelinedConnection, token: Int, writable: Bool = false) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | (writable ? EPOLLOUT.rawValue : 0)
        event.data.u64 = UInt64(token)
        let socket = connection.socket.fd
        if epoll_ctl(fd, EPOLL_CTL_MOD, socket, &event) != 0, errno == ENOENT {
            epoll_ctl(fd, EPOLL_CTL_ADD, socket, &event)
        }
    }

    /// Waits up to `milliseconds` (-1: no limit) and calls `ready` with the
    /// token of each connection that can be read or written.
    public func wait<Failure: Error>(
        milliseconds: Int32, _ ready: (_ token: Int) throws(Failure) -> Void
    ) throws(Failure) {
        let count = events.withUnsafeMutableBufferPointer { buffer in
            epoll_wait(fd, buffer.baseAddress, Int32(buffer.count), milliseconds)
        }
        for index in 0..<Int(max(count, 0)) {
            try ready(Int(events[index].data.u64))
        }
    }
}
