import IProto

/// One call of a described function, its arguments encoded once, with the
/// decoder of its reply: what the generated `…Calls` enums make, and what any
/// transport sends (``IProtoClient`` from tasks, ``BlockingCalls`` from a thread).
public struct PreparedCall<Reply>: Sendable {
    public let funcID: UInt32
    /// The request body: the arguments, one MessagePack value after another.
    public let body: [UInt8]
    /// The function's name, for errors about its reply.
    public let name: String
    private let decode: @Sendable (inout Arguments) throws(IProtoError) -> Reply

    public init(
        _ funcID: UInt32, name: String, arguments: [MessagePackValue],
        decode: @escaping @Sendable (inout Arguments) throws(IProtoError) -> Reply
    ) {
        var writer = MessagePackWriter()
        for argument in arguments { writer.write(argument) }
        self.funcID = funcID
        self.body = writer.bytes
        self.name = name
        self.decode = decode
    }

    /// The reply's value. A non-zero return code is thrown as ``ClientError/server(_:)``,
    /// a body that does not match the function's reply as ``ClientError/protocolViolation(_:)``.
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
        try call.reply(try await self.call(call.funcID, body: call.body, timeout: timeout))
    }
}
