import IProto

/// Why a call did not get a successful reply.
public enum ClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server answered with a non-zero return code and this message.
    case server(IProtoError)
    /// No reply within the call's timeout; the request may or may not have run.
    case timedOut
    /// Could not connect (or still backing off after failing to).
    case connectionFailed(String)
    /// The connection closed before the reply arrived; the request may or may not have run.
    case connectionClosed
    /// The calling task was cancelled.
    case cancelled
    /// The server sent something that is not a valid response.
    case protocolViolation(String)
    /// Not sent: too many earlier requests wait for their replies on the connection.
    case overloaded(String)

    public var description: String {
        switch self {
        case .server(let error): "server error \(error.code.rawValue): \(error.message)"
        case .timedOut: "timed out"
        case .connectionFailed(let reason): "cannot connect: \(reason)"
        case .connectionClosed: "connection closed before the reply"
        case .cancelled: "cancelled"
        case .protocolViolation(let reason): "protocol violation: \(reason)"
        case .overloaded(let reason): "not sent: \(reason)"
        }
    }

    /// The return code when the server refused the call.
    public var returnCode: ReturnCode? {
        if case .server(let error) = self { return error.code }
        return nil
    }
}

/// A reply as it came off the wire.
public struct Response: Equatable, Sendable {
    public var returnCode: ReturnCode
    public var body: [UInt8]

    public init(returnCode: ReturnCode, body: [UInt8]) {
        self.returnCode = returnCode
        self.body = body
    }

    /// The body as a single MessagePack string (an error's message), if it is one.
    public var string: String? {
        var reader = MessagePackReader(body)
        guard let value = try? reader.readString(), reader.isAtEnd else { return nil }
        return value
    }

    /// The reply as a value, or the server's error thrown.
    public func checked() throws(ClientError) -> Response {
        guard returnCode == .ok else {
            throw .server(IProtoError(returnCode, string ?? "return code \(returnCode.rawValue)"))
        }
        return self
    }
}
