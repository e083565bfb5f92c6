/// The dispatch table: one handler per func_id, frozen once a server is built from it.
///
/// ```swift
/// var handlers = Handlers()
/// handlers.register(0x0003_0001, name: "HELLO") { request in
///     var arguments = try request.arguments(1)
///     return .string("hello, \(try arguments.string(maxBytes: 64))")
/// }
/// ```
public struct Handlers: Sendable {
    /// Runs on a worker thread for every request with its func_id. Returning a
    /// value answers with return code 0 and that value as the body; throwing an
    /// ``IProtoError`` answers with its code and message; any other error
    /// answers with ``ReturnCode/internalError``.
    public typealias Handler = @Sendable (Request) throws -> MessagePackValue

    /// Runs on worker `worker`'s thread right before it sends a batch of
    /// replies. Throwing replaces every successful reply of the batch with the
    /// error thrown: nothing is acknowledged that the barrier could not make durable.
    public typealias ReplyBarrier = @Sendable (_ worker: Int) throws(IProtoError) -> Void

    private(set) var table: [UInt32: Handler] = [:]
    private(set) var names: [UInt32: String] = [:]
    private(set) var replyBarriers: [ReplyBarrier] = []

    public init() {}

    /// Registers `handler` for `funcID`. `name` labels the function in metrics
    /// and logs (default: the func_id in hex). Registering a func_id twice is a
    /// programming error.
    public mutating func register(_ funcID: UInt32, name: String? = nil, _ handler: @escaping Handler) {
        precondition(table[funcID] == nil, "func_id 0x\(String(funcID, radix: 16)) is registered twice")
        table[funcID] = handler
        names[funcID] = name ?? "0x\(hex(funcID))"
    }

    /// Adds `barrier`, run on a worker thread before each batch of its replies
    /// leaves the process: a service makes what the replies acknowledge durable
    /// there, with one sync for the whole batch (group commit). Blocking in it
    /// delays that worker's replies, never their order. When it throws, the
    /// batch's successful replies (code 0) are answered with its error instead;
    /// error replies go out as they are.
    public mutating func beforeReplies(_ barrier: @escaping ReplyBarrier) {
        replyBarriers.append(barrier)
    }

    /// The registered func_ids, in ascending order.
    public var funcIDs: [UInt32] { table.keys.sorted() }
}
