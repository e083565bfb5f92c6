import IProto

/// A blocking connection for load generation: write a batch of request frames
/// in one call, then read the replies as they come. Not for sharing between
/// threads; ``IProtoClient`` is the general-purpose client.
public final class PipelinedConnection {
    private let socket: Socket
    private let timeout: Duration
    private var buffer: [UInt8] = []
    private var offset = 0

    public init(host: String, port: Int, timeout: Duration = .seconds(5)) throws(ClientError) {
        socket = try Socket.connect(host: host, port: port, timeout: timeout, sendTimeout: timeout)
        self.timeout = timeout
    }

    /// Writes `frames` (complete request frames) with one call where the socket allows.
    public func send(_ frames: [UInt8]) throws(ClientError) {
        try socket.send(frames)
    }

    /// Reads the next reply and returns its request_id and return code; the body is skipped.
    public func nextReply() throws(ClientError) -> (requestID: UInt32, returnCode: ReturnCode) {
        while true {
            if let (header, body) = Framing.response(in: buffer, at: offset) {
                offset = body.upperBound
                return (header.requestID, header.returnCode)
            }
            if offset > 0 {
                buffer.removeFirst(offset)
                offset = 0
            }
            switch socket.receive(into: &buffer, timeout: timeout) {
            case .data: continue
            case .timedOut: throw .timedOut
            case .closed: throw .connectionClosed
            }
        }
    }
}
