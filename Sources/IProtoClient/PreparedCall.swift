import IProto

/// One call of a described function, its arguments encoded once, with the
/// decoder of its reply: what the generated `…Calls` enums make, and what any
/// transport sends (``IProtoClient`` from tasks, ``BlockingCalls`` from a thread).
public struct PreparedCall<Reply>: Sendable {
    public let funcID: UInt32
    /// The request body in pieces that, one after another, are the arguments encoded
    /// one MessagePack value after another. A large `bin` argument's bytes (a file
    /// store's chunk) are a piece of their own, the caller's array itself, sent after
    /// the bytes before them without being copied into a body.
    public let pieces: [[UInt8]]
    /// The request body, whole.
    public var body: [UInt8] { pieces.count == 1 ? pieces[0] : Array(pieces.joined()) }
    /// Its length in bytes.
    public var bodyLength: Int { pieces.reduce(0) { $0 + $1.count } }
    /// The function's name, for errors about its reply.
    public let name: String
    private let decode: @Sendable (inout Arguments) throws(IProtoError) -> Reply

    public init(
        _ funcID: UInt32, name: String, arguments: [MessagePackValue],
        decode: @escaping @Sendable (inout Arguments) throws(IProtoError) -> Reply
    ) {
        var writer = MessagePackWriter()
        var pieces: [[UInt8]] = []
        for argument in arguments {
            if case .binary(let bytes) = argument, bytes.count >= Self.uncopiedBinaryBytes {
                writer.writeBinaryHeader(count: bytes.count)
                pieces += [writer.bytes, bytes]
                writer.reset()
            } else {
                writer.write(argument)
            }
        }
        if pieces.isEmpty || !writer.bytes.isEmpty { pieces.append(writer.bytes) }
        self.funcID = funcID
        self.pieces = pieces
        self.name = name
        self.decode = decode
    }

    /// The reply's value. A non-zero return code is thrown as ``ClientError/server(_:)``,
    /// a body that does not match the function's reply as ``ClientError/protocolViolation(_:)``.
    /// `bin` arguments from this size on are sent from their own arrays.
    public static var uncopiedBinaryBytes: Int { 64 << 10 }

    public func reply(_ response: Response) throws(ClientError) -> Reply {
        let response = try response.checked()
        do throws(IProtoError) {
            var values = try Arguments(values: response.body, count: 1)
            return try decode(&values)
        } catch {
            throw .protocolViolation("\(name) reply: \(error.message)")
        }
    }
}

extension IProtoClient {
    /// Sends `call` over one of the pool's connections and decodes its reply.
    public func call<Reply>(_ call: PreparedCall<Reply>, timeout: Duration? = nil) async throws(ClientError) -> Reply {
        try call.reply(try await self.call(call.funcID, pieces: call.pieces, timeout: timeout))
    }
}
