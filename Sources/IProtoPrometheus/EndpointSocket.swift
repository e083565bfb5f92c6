#if canImport(Glibc)
import Glibc
#endif

/// The metrics endpoint's only contact with the socket system calls, and the
/// module's only unsafe pointers. Every descriptor is non-blocking and
/// close-on-exec; EINTR is retried here, EAGAIN becomes a value, and other
/// errors come back as their errno for the caller to decide.
enum EndpointSocket {
    /// What one non-blocking send or receive did.
    enum Transfer: Equatable {
        case bytes(Int)
        case wouldBlock
        /// End of stream, or an error that ends the connection (reset, broken pipe).
        case closed
    }

    /// What one non-blocking accept did.
    enum Accepted: Equatable {
        case connection(Int32)
        /// Nothing pending.
        case nothing
        /// accept() failed with this errno: EMFILE, ENFILE, ENOBUFS, ENOMEM…
        case failed(Int32)
    }

    /// A listening socket on a numeric IPv4 or IPv6 address, and the address it
    /// bound ("host:port" or "[v6]:port", with the port the kernel chose for 0).
    static func listen(host: String, port: UInt16, backlog: Int32) throws(MetricsEndpointError) -> (fd: Int32, address: String) {
        var storage = sockaddr_storage()
        let length: socklen_t
        let family: Int32
        if host.contains(":") {
            family = AF_INET6
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            let parsed = withUnsafeMutableBytes(of: &storage) { raw in
                let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                address.pointee.sin6_family = sa_family_t(AF_INET6)
                address.pointee.sin6_port = port.bigEndian
                return inet_pton(AF_INET6, host, &address.pointee.sin6_addr) == 1
            }
            guard parsed else { throw MetricsEndpointError(message: "\(host) is not a numeric IPv6 address") }
        } else {
            family = AF_INET
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let parsed = withUnsafeMutableBytes(of: &storage) { raw in
                let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                address.pointee.sin_family = sa_family_t(AF_INET)
                address.pointee.sin_port = port.bigEndian
                return inet_pton(AF_INET, host, &address.pointee.sin_addr) == 1
            }
            guard parsed else { throw MetricsEndpointError(message: "\(host) is not a numeric IPv4 address") }
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MetricsEndpointError(message: "socket: \(errorText(errno))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let error = errno
            Glibc.close(fd)
            throw MetricsEndpointError(message: "bind: \(errorText(error))")
        }
        var actual = sockaddr_storage()
        var actualLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) }
        }
        let boundPort = withUnsafeBytes(of: &actual) { raw in
            UInt16(bigEndian: family == AF_INET6
                ? raw.load(as: sockaddr_in6.self).sin6_port
                : raw.load(as: sockaddr_in.self).sin_port)
        }
        return (fd, family == AF_INET6 ? "[\(host)]:\(boundPort)" : "\(host):\(boundPort)")
    }

    /// One accept on the non-blocking listening socket `fd`. Glibc's module has
    /// no accept4, so the new descriptor is made non-blocking and close-on-exec
    /// with fcntl (iprotod never forks, so nothing can inherit it in between).
    static func accept(_ fd: Int32) -> Accepted {
        while true {
            let connection = Glibc.accept(fd, nil, nil)
            if connection >= 0 {
                _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
                _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                return .connection(connection)
            }
            switch errno {
            case EINTR, ECONNABORTED, EPROTO: continue  // that connection is gone; try the next
            case EAGAIN, EWOULDBLOCK: return .nothing
            case let error: return .failed(error)
            }
        }
    }

    /// One receive of at most `limit` bytes, appended to `buffer`.
    static func receive(_ fd: Int32, into buffer: inout [UInt8], limit: Int) -> Transfer {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: limit))
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress! + start, limit, 0) }
            if n < 0 && errno == EINTR { continue }
            let error = errno
            buffer.removeLast(limit - max(n, 0))
            if n > 0 { return .bytes(n) }
            if n < 0 && (error == EAGAIN || error == EWOULDBLOCK) { return .wouldBlock }
            return .closed
        }
    }

    /// One send of `bytes[offset...]`, without SIGPIPE.
    static func send(_ fd: Int32, _ bytes: [UInt8], from offset: Int) -> Transfer {
        while true {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n >= 0 { return .bytes(n) }
            if errno == EINTR { continue }
            return errno == EAGAIN || errno == EWOULDBLOCK ? .wouldBlock : .closed
        }
    }

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// Reads and drops what has arrived, at most 64 KiB, without waiting.
    static func discardPending(_ fd: Int32) {
        var scratch = [UInt8](repeating: 0, count: 65536)
        _ = scratch.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress!, raw.count, Int32(MSG_DONTWAIT)) }
    }

    /// Waits up to `milliseconds` (-1: for ever) for the events in `fds`; their
    /// `revents` are set. A signal only ends the wait early.
    static func poll(_ fds: inout [pollfd], milliseconds: Int32) {
        let ready = Glibc.poll(&fds, nfds_t(fds.count), milliseconds)
        precondition(ready >= 0 || errno == EINTR || errno == ENOMEM, "poll: \(errorText(errno))")
    }

    /// A pipe whose read end wakes a poll when a byte is written to the other:
    /// how another thread tells the endpoint's thread to stop.
    static func wakePipe() throws(MetricsEndpointError) -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw MetricsEndpointError(message: "pipe: \(errorText(errno))") }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        return (ends[0], ends[1])
    }

    static func wake(_ fd: Int32) {
        var byte: UInt8 = 1
        _ = write(fd, &byte, 1)
    }

    static func errorText(_ error: Int32) -> String { String(cString: strerror(error)) }
}
