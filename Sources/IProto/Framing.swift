/// The fixed headers of the wire format: unsigned 32-bit little-endian fields.
///
///     request  = func_id body_length request_id body
///     response = func_id body_length request_id return_code body
///
/// A response's body_length counts the body only, not return_code.
public enum Framing {
    public static let requestHeaderSize = 12
    public static let responseHeaderSize = 16

    /// A complete request frame.
    public static func request(funcID: UInt32, requestID: UInt32, body: some Collection<UInt8>) -> [UInt8] {
        request(funcID: funcID, requestID: requestID, bodyLength: body.count, start: body)
    }

    /// The header of a request whose body is `bodyLength` bytes, followed by the
    /// body's first `start` bytes (the rest is sent after it, uncopied).
    public static func request(funcID: UInt32, requestID: UInt32, bodyLength: Int, start: some Collection<UInt8>) -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(requestHeaderSize + start.count)
        appendLittleEndian(funcID, to: &frame)
        appendLittleEndian(UInt32(bodyLength), to: &frame)
        appendLittleEndian(requestID, to: &frame)
        frame.append(contentsOf: start)
        return frame
    }

    /// A complete response frame.
    public static func response(funcID: UInt32, requestID: UInt32, returnCode: ReturnCode,
                                body: some Collection<UInt8>) -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(responseHeaderSize + body.count)
        appendLittleEndian(funcID, to: &frame)
        appendLittleEndian(UInt32(body.count), to: &frame)
        appendLittleEndian(requestID, to: &frame)
        appendLittleEndian(returnCode.rawValue, to: &frame)
        frame.append(contentsOf: body)
        return frame
    }

    /// A parsed response header.
    public struct ResponseHeader: Equatable, Sendable {
        public var funcID: UInt32
        public var bodyLength: UInt32
        public var requestID: UInt32
        public var returnCode: ReturnCode

        /// Parses the first 16 bytes of `bytes`; nil when fewer are there.
        public init?(_ bytes: some Collection<UInt8>) {
            guard bytes.count >= Framing.responseHeaderSize else { return nil }
            self.init(Array(bytes.prefix(Framing.responseHeaderSize)), at: 0)
        }

        /// Parses the header at `offset`, which the caller has checked holds 16 bytes.
        init(_ bytes: [UInt8], at offset: Int) {
            funcID = Framing.loadLittleEndian(bytes, at: offset)
            bodyLength = Framing.loadLittleEndian(bytes, at: offset + 4)
            requestID = Framing.loadLittleEndian(bytes, at: offset + 8)
            returnCode = ReturnCode(rawValue: Framing.loadLittleEndian(bytes, at: offset + 12))
        }
    }

    /// The complete response frame at `offset` in `bytes` (received up to `end`, by default
    /// all of them): its header and where its body lies; nil while the frame is incomplete.
    /// Every client in the package parses replies with it.
    public static func response(in bytes: [UInt8], at offset: Int, end: Int? = nil) -> (header: ResponseHeader, body: Range<Int>)? {
        let end = end ?? bytes.count
        guard end - offset >= responseHeaderSize else { return nil }
        let header = ResponseHeader(bytes, at: offset)
        let bodyStart = offset + responseHeaderSize
        guard end - bodyStart >= Int(header.bodyLength) else { return nil }
        return (header, bodyStart..<bodyStart + Int(header.bodyLength))
    }

    static func appendLittleEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> shift)) }
    }

    static func loadLittleEndian(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }
}
