import IProto

/// A non-blocking connection for load generation, driven by a ``Poller``:
/// request frames go out in as few writes as the socket allows, and replies
/// are parsed from what has arrived. Not for sharing between threads;
/// ``IProtoClient`` is the general-purpose client.
public final class PipelinedConnection {
    let socket: Socket
    /// Received bytes: replies parsed up to `parsed`, received up to `received`.
    /// Grows to hold the largest reply; consumed bytes are moved out before each read.
    private var input = [UInt8](repeating: 0, count: 64 * 1024)
    private var parsed = 0
    private var received = 0
    private var output: [UInt8] = []
    private var outputOffset = 0

    public init(host: String, port: Int, timeout: Duration = .seconds(5)) throws(ClientError) {
        socket = try Socket.connect(host: host, port: port, timeout: timeout, sendTimeout: timeout)
        socket.makeNonBlocking()
    }

    /// A connection whose connect is still under way: watch it for writability and
    /// call ``finishConnecting()`` when it is writable. Frames sent meanwhile wait.
    init(startingToConnect host: String, port: Int) throws(ClientError) {
        socket = try Socket.startConnecting(host: host, port: port)
        isConnecting = true
    }

    /// True until the connect under way has ended.
    private(set) var isConnecting = false

    /// Ends the connect under way once the socket is writable, and sends what waited.
    func finishConnecting() throws(ClientError) {
        if let error = socket.connectionError() { throw .connectionFailed(error) }
        isConnecting = false
        try flush()
    }

    /// True while written frames wait for room in the socket: watch the
    /// connection for writability and call ``flush()`` when it has some.
    public var hasPendingOutput: Bool { outputOffset < output.count }

    /// Queues complete request frames and sends what the socket takes now.
    public func send(_ frames: [UInt8]) throws(ClientError) {
        if hasPendingOutput || isConnecting {
            output += frames
        } else {
            output = frames
            outputOffset = 0
        }
        try flush()
    }

    /// Sends queued bytes until the socket would block.
    public func flush() throws(ClientError) {
        while hasPendingOutput, !isConnecting {
            switch socket.sendSome(output, from: outputOffset) {
            case .bytes(let n): outputOffset += n
            case .wouldBlock: return
            case .closed: throw .connectionClosed
            }
        }
    }

    /// Reads what has arrived, until the socket would block. `maxBody`: a reply
    /// announcing a larger body fails the connection rather than being buffered.
    public func receive(maxBody: Int = .max) throws(ClientError) {
        if parsed > 0 {
            for index in parsed..<received { input[index - parsed] = input[index] }  // a partial reply at most
            received -= parsed
            parsed = 0
        }
        while true {
            if received == input.count {
                // Full: grow only for a reply within the limit (the first incomplete one).
                var offset = parsed
                while let (_, body) = Framing.response(in: input, at: offset, end: received) { offset = body.upperBound }
                if let header = Framing.ResponseHeader(input[offset..<received]), Int(header.bodyLength) > maxBody {
                    throw .protocolViolation("response body of \(header.bodyLength) bytes, more than \(maxBody)")
                }
                input += repeatElement(0, count: input.count)
            }
            switch socket.receiveSome(into: &input, at: received) {
            case .bytes(let n): received += n
            case .wouldBlock: return
            case .closed: throw .connectionClosed
            }
        }
    }

    /// The next complete reply among the received bytes, body and all, or nil;
    /// one with a body over `maxBody` fails the connection.
    func nextResponse(maxBody: Int = .max) throws(ClientError) -> (requestID: UInt32, response: Response)? {
        guard let (header, body) = Framing.response(in: input, at: parsed, end: received) else { return nil }
        guard body.count <= maxBody else {
            throw .protocolViolation("response body of \(body.count) bytes, more than \(maxBody)")
        }
        parsed = body.upperBound
        return (header.requestID, Response(returnCode: header.returnCode, body: Array(input[body])))
    }

    /// The next complete reply among the received bytes (its body skipped), or nil.
    public func nextReply() -> (requestID: UInt32, returnCode: ReturnCode)? {
        guard let (header, body) = Framing.response(in: input, at: parsed, end: received) else { return nil }
        parsed = body.upperBound
        return (header.requestID, header.returnCode)
    }
}
