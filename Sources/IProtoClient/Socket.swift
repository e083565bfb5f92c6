#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP socket: the client's only contact with the socket system calls.
/// The descriptor is fixed for the object's life; send and receive may run on
/// different threads, as the kernel allows.
final class Socket: Sendable {
    let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Connects to `host:port` (any address getaddrinfo gives), waiting at most `timeout`.
    static func connect(host: String, port: Int, timeout: Duration, sendTimeout: Duration) throws(ClientError) -> Socket {
        let socket = try open(host: host, port: port) { socket, address, length in socket.connect(address, length, timeout) }
        var limit = timeval(sendTimeout)
        setsockopt(socket.fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        return socket
    }

    /// A non-blocking socket whose connection to `host:port` is under way (or made):
    /// it becomes writable when the attempt ends, and ``connectionError()`` then says how.
    static func startConnecting(host: String, port: Int) throws(ClientError) -> Socket {
        try open(host: host, port: port) { socket, address, length in
            socket.makeNonBlocking()
            if Glibc.connect(socket.fd, address, length) == 0 || errno == EINPROGRESS { return nil }
            return String(cString: strerror(errno))
        }
    }

    /// Why the connection a ``startConnecting(host:port:)`` began failed; nil when it is made.
    func connectionError() -> String? {
        var error: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
        return error == 0 ? nil : String(cString: strerror(error))
    }

    /// A TCP socket (TCP_NODELAY) on which `attempt` succeeded, trying each address of
    /// `host:port` in turn; `attempt` returns an error text or nil.
    private static func open(
        host: String, port: Int, attempt: (Socket, UnsafePointer<sockaddr>, socklen_t) -> String?
    ) throws(ClientError) -> Socket {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw .connectionFailed("cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address for \(host)"
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let address = candidate {
            candidate = address.pointee.ai_next
            let fd = socket(address.pointee.ai_family, address.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { lastError = String(cString: strerror(errno)); continue }
            let socket = Socket(fd: fd)
            if let error = attempt(socket, address.pointee.ai_addr, address.pointee.ai_addrlen) {
                lastError = error
                continue
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return socket
        }
        throw .connectionFailed("\(host):\(port): \(lastError)")
    }

    /// Non-blocking connect bounded by poll; returns an error text or nil.
    private func connect(_ address: UnsafePointer<sockaddr>, _ length: socklen_t, _ timeout: Duration) -> String? {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        if Glibc.connect(fd, address, length) == 0 { return nil }
        guard errno == EINPROGRESS else { return String(cString: strerror(errno)) }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, Int32(timeout / .milliseconds(1))) == 1 else { return "timed out after \(timeout)" }
        return connectionError()
    }

    /// Sends every byte; fails when the peer is gone or the send timeout expires.
    func send(_ bytes: [UInt8]) throws(ClientError) {
        try send([bytes])
    }

    /// Sends `pieces` one after another as one stream of bytes, each from its own
    /// array; all but the last with MSG_MORE, so the kernel packs them into
    /// segments as if they were one buffer.
    func send(_ pieces: [[UInt8]]) throws(ClientError) {
        for (index, piece) in pieces.enumerated() {
            try send(piece, flags: Int32(MSG_NOSIGNAL) | (index < pieces.count - 1 ? Int32(MSG_MORE) : 0))
        }
    }

    private func send(_ bytes: [UInt8], flags: Int32) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, flags)
            }
            if n > 0 {
                offset += n
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                throw .timedOut
            } else if errno != EINTR {
                throw .connectionClosed
            }
        }
    }

    enum Received { case data, timedOut, closed }

    /// Waits up to `timeout` for bytes and appends what arrived to `buffer`.
    func receive(into buffer: inout [UInt8], timeout: Duration) -> Received {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, Int32(timeout / .milliseconds(1)))
        if ready == 0 || (ready < 0 && errno == EINTR) { return .timedOut }
        // Received into scratch space and appended, so that a reply of a few
        // bytes costs a few bytes of copying, not a 64 KiB fill of the buffer.
        let n = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65536) { chunk in
            let n = recv(fd, chunk.baseAddress!, chunk.count, 0)
            if n > 0 { buffer.append(contentsOf: chunk.prefix(n)) }
            return n
        }
        if n > 0 { return .data }
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return .timedOut }
        return .closed
    }

    /// Receives a body of `count` bytes whose first `prefix.count` have arrived
    /// already straight into an array of its own: a large reply goes from the
    /// kernel to the array that carries it, without a buffer in between. While no
    /// bytes come, `keepWaiting` is asked every `interval`; nil when it says stop
    /// or the socket closes.
    func receive(count: Int, after prefix: ArraySlice<UInt8>, pollEvery interval: Duration,
                 keepWaiting: () -> Bool) -> [UInt8]? {
        precondition(prefix.count <= count)
        var complete = false
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = UnsafeMutableBufferPointer(rebasing: buffer[0..<prefix.count]).initialize(from: prefix).1
            while done < count {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&poller, 1, Int32(interval / .milliseconds(1)))
                if ready == 0 || (ready < 0 && errno == EINTR) {
                    if keepWaiting() { continue }
                    break
                }
                let n = recv(fd, buffer.baseAddress! + done, count - done, 0)
                if n > 0 {
                    done += n
                } else if n < 0 && (errno == EINTR || errno == EAGAIN) {
                    continue
                } else {
                    break
                }
            }
            complete = done == count
            initialized = done
        }
        return complete ? bytes : nil
    }

    /// Puts the socket in non-blocking mode, for use with a ``Poller``.
    func makeNonBlocking() { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }

    /// What one call on a non-blocking socket did.
    enum Transfer: Equatable { case bytes(Int), wouldBlock, closed }

    /// One send of `bytes[offset...]` on a non-blocking socket.
    func sendSome(_ bytes: [UInt8], from offset: Int) -> Transfer {
        while true {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n >= 0 { return .bytes(n) }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
            if errno != EINTR { return .closed }
        }
    }

    /// One recv on a non-blocking socket into `buffer[offset...]`.
    func receiveSome(into buffer: inout [UInt8], at offset: Int) -> Transfer {
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress! + offset, raw.count - offset, 0) }
            if n > 0 { return .bytes(n) }
            if n == 0 { return .closed }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
            if errno != EINTR { return .closed }
        }
    }

    /// Wakes a blocked receiver and refuses further sends.
    func shutdown() { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
}

extension timeval {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
