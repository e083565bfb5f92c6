import Dispatch
import IProto

#if canImport(Glibc)
import Glibc
#endif

/// A failure talking to the server under test.
public struct TestSocketError: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }

    /// A failed system call, with errno's text.
    static func system(_ call: String, _ code: Int32 = errno) -> TestSocketError {
        TestSocketError("\(call): \(String(cString: strerror(code)))")
    }
}

/// One response as read off the wire.
public struct TestResponse: Equatable, Sendable {
    public var header: Framing.ResponseHeader
    public var body: [UInt8]

    public var returnCode: ReturnCode { header.returnCode }
    public var requestID: UInt32 { header.requestID }

    /// The body decoded as a single MessagePack string, if it is one.
    public var string: String? {
        var reader = MessagePackReader(body)
        guard let value = try? reader.readString(), reader.isAtEnd else { return nil }
        return value
    }

    /// True when the body is exactly MessagePack nil.
    public var isNil: Bool { body == [0xc0] }
}

/// The MessagePack encoding of `values`, one after another.
public func messagePack(_ values: MessagePackValue...) -> [UInt8] {
    var writer = MessagePackWriter()
    for value in values { writer.write(value) }
    return writer.bytes
}

/// A blocking TCP connection with a receive timeout, for driving a server in tests.
public final class TestConnection {
    public let fd: Int32
    private var nextRequestID: UInt32 = 1

    /// Connects to 127.0.0.1:`port` from `source` (another loopback address
    /// looks like another client). `receiveBuffer`/`sendBuffer` shrink the socket buffers when set.
    public init(port: Int, timeout: Double = 10, source: String? = nil,
                receiveBuffer: Int32? = nil, sendBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSocketError.system("socket") }
        if let receiveBuffer { setOption(SO_RCVBUF, receiveBuffer) }
        if let sendBuffer { setOption(SO_SNDBUF, sendBuffer) }
        setTimeout(timeout)
        do {
            if let source { try withAddress(source, port: 0, "bind \(source)") { bind(fd, $0, $1) } }
            try withAddress("127.0.0.1", port: port, "connect") { connect(fd, $0, $1) }
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Calls `operation` (bind or connect) with an IPv4 address; throws with `call`'s name on failure.
    private func withAddress(_ host: String, port: Int, _ call: String,
                             _ operation: (UnsafePointer<sockaddr>, socklen_t) -> Int32) throws {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(host)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { operation($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TestSocketError.system(call) }
    }

    deinit { Glibc.close(fd) }

    private func setOption(_ option: Int32, _ value: Int32) {
        var value = value
        setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// How long a receive may block before it fails.
    public func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TestSocketError.system("send") }
            offset += n
        }
    }

    /// Sends without blocking; returns how many bytes the socket took (0 when full).
    public func sendNonBlocking(_ bytes: ArraySlice<UInt8>) throws -> Int {
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        if n >= 0 { return n }
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return 0 }
        throw TestSocketError.system("send")
    }

    /// Reads exactly `count` bytes, or throws on timeout, error or end of stream.
    public func receive(exactly count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = bytes[offset...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { throw TestSocketError("recv: connection closed after \(offset) of \(count) bytes") }
            guard n > 0 else { throw TestSocketError.system("recv") }
            offset += n
        }
        return bytes
    }

    /// What the peer does next: more bytes, an orderly close, or a reset.
    public enum Outcome: Equatable { case data, closed, reset, timedOut }

    /// Waits for the next event on the socket without consuming data.
    public func nextOutcome() -> Outcome {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK))
        if n > 0 { return .data }
        if n == 0 { return .closed }
        if errno == EAGAIN || errno == EWOULDBLOCK { return .timedOut }
        return .reset
    }

    /// Reads until the peer closes; returns everything read.
    public func receiveUntilClosed() throws -> [UInt8] {
        var all: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return all }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TestSocketError.system("recv") }
            all.append(contentsOf: chunk[0..<n])
        }
    }

    public func readResponse() throws -> TestResponse {
        let headerBytes = try receive(exactly: Framing.responseHeaderSize)
        let header = Framing.ResponseHeader(headerBytes)!
        return TestResponse(header: header, body: try receive(exactly: Int(header.bodyLength)))
    }

    /// Sends one request and reads its response, checking the echoed header fields.
    public func call(_ funcID: UInt32, _ body: [UInt8] = []) throws -> TestResponse {
        let requestID = nextRequestID
        nextRequestID &+= 1
        try send(Framing.request(funcID: funcID, requestID: requestID, body: body))
        let response = try readResponse()
        guard response.requestID == requestID, response.header.funcID == funcID else {
            throw TestSocketError("response \(response.header) does not match request \(requestID)")
        }
        return response
    }

    /// Closes our sending side (the server sees end of stream).
    public func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Closes with an RST instead of a FIN.
    public func reset() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }
}

/// Runs blocking work on a Dispatch thread, keeping the cooperative pool free.
public func onBlockingThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result(catching: work)) }
    }
}
