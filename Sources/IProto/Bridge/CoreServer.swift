import CIProtoCore

#if canImport(Glibc)
import Glibc
#endif

// The only Swift that holds the C core's pointers. Everything above it is safe Swift.

/// What the C callbacks reach through their context pointer.
/// @unchecked: every field is immutable, and each worker context is confined to its worker thread.
final class CallbackContext: @unchecked Sendable {
    let workers: [WorkerContext]
    let replyBarriers: [Handlers.ReplyBarrier]

    init(workers: [WorkerContext], replyBarriers: [Handlers.ReplyBarrier]) {
        self.workers = workers
        self.replyBarriers = replyBarriers
    }
}

extension ConnectionState {
    /// The state as kept in the core's per-connection slot (zeroed for a new connection).
    init(_ slot: iproto_conn_slot) {
        bucket = TokenBucket(tokens: slot.values.0, refilledAt: slot.values.1)
        warnings = LogThrottle(lastAt: slot.values.2, suppressed: slot.counters.0)
        addressBucket = slot.counters.1
        admin = slot.counters.2 != 0
    }

    var slot: iproto_conn_slot {
        iproto_conn_slot(values: (bucket.tokens, bucket.refilledAt, warnings.lastAt, 0),
                         counters: (warnings.suppressed, addressBucket, admin ? 1 : 0, 0))
    }
}

/// Captures nothing; recovers the context from the pointer. Borrowed body
/// bytes are copied into the worker's buffer before any handler runs, and no
/// Swift error crosses back into C: the dispatcher turns every error into a reply.
private let requestTrampoline: iproto_request_fn = { context, connection, worker, funcID, requestID, body, length in
    let startedAt = monotonicNanoseconds()
    let worker = Unmanaged<CallbackContext>.fromOpaque(context!).takeUnretainedValue().workers[Int(worker)]
    worker.body.overwrite(with: UnsafeRawBufferPointer(start: body, count: Int(length)))
    let slot = iproto_conn_state(connection)!
    var state = ConnectionState(slot.pointee)
    let code = worker.serve(funcID: funcID, requestID: requestID, connection: &state,
                            peer: { String(cString: iproto_conn_peer(connection)) }, startedAt: startedAt)
    slot.pointee = state.slot
    let writer = worker.writer
    guard !writer.references.isEmpty else {
        return writer.bytes.withUnsafeBytes { reply in
            iproto_reply(connection, funcID, requestID, code.rawValue,
                         reply.baseAddress?.assumingMemoryBound(to: CChar.self), UInt32(reply.count))
        }
    }
    writer.bytes.withUnsafeBytes { encoded in
        withReferencedPieces(writer.references[...], encoded: encoded, from: 0, pieces: []) { pieces in
            iproto_reply_pieces(connection, funcID, requestID, code.rawValue, pieces, pieces.count)
        }
    }
}

/// The reply as pieces in order: the stretches of `encoded` between the referenced
/// binaries, and the binaries themselves, each pointed at where it lies (one nested
/// `withUnsafeBytes` per binary, so that every pointer is valid in `body`).
private func withReferencedPieces(
    _ references: ArraySlice<(offset: Int, bytes: [UInt8])>, encoded: UnsafeRawBufferPointer, from start: Int,
    pieces: [iproto_piece], _ body: ([iproto_piece]) -> Void
) {
    func piece(_ bytes: UnsafeRawBufferPointer) -> iproto_piece {
        iproto_piece(data: bytes.baseAddress?.assumingMemoryBound(to: CChar.self), length: UInt32(bytes.count))
    }
    guard let reference = references.first else {
        return body(pieces + [piece(UnsafeRawBufferPointer(rebasing: encoded[start...]))])
    }
    reference.bytes.withUnsafeBytes { binary in
        let before = piece(UnsafeRawBufferPointer(rebasing: encoded[start..<reference.offset]))
        withReferencedPieces(references.dropFirst(), encoded: encoded, from: reference.offset, pieces: pieces + [before, piece(binary)], body)
    }
}

extension [UInt8] {
    /// Makes the array a copy of `bytes` in the storage it already has: the
    /// per-request body copy, one memcpy instead of the generic append path.
    mutating func overwrite(with bytes: UnsafeRawBufferPointer) {
        if count > bytes.count {
            removeLast(count - bytes.count)
        } else if count < bytes.count {
            append(contentsOf: repeatElement(0, count: bytes.count - count))
        }
        guard let source = bytes.baseAddress else { return }
        withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: source, byteCount: bytes.count) }
    }
}

/// On open, the connection's slot gets its state (admin permission, per-address
/// bucket) from its address, once; on close, that state is released.
private let connectionTrampoline: iproto_conn_fn = { context, connection, worker, event, peer, reason in
    let worker = Unmanaged<CallbackContext>.fromOpaque(context!).takeUnretainedValue().workers[Int(worker)]
    let reason = CloseReason(reason)
    let swiftEvent: ConnectionEvent
    switch event {
    case IPROTO_CONN_OPENED:
        var address = iproto_address(), key = iproto_address()
        iproto_conn_address(connection, &address)
        iproto_conn_address_key(connection, &key)
        iproto_conn_state(connection)!.pointee = worker.opened(address: IPAddress(address), key: IPAddress(key)).slot
        swiftEvent = .opened
    case IPROTO_CONN_CLOSED:
        worker.closed(ConnectionState(iproto_conn_state(connection)!.pointee))
        swiftEvent = .closed(reason)
    default:
        swiftEvent = .rejected(reason)
    }
    worker.record(swiftEvent, peer: { peer.map { String(cString: $0) } ?? "?" })
}

private let acceptErrorTrampoline: iproto_accept_error_fn = { context, worker, error in
    Unmanaged<CallbackContext>.fromOpaque(context!).takeUnretainedValue().workers[Int(worker)]
        .acceptFailed(errno: error, message: String(cString: strerror(error)))
}

/// Runs the barriers; the first error becomes the reply that replaces the batch's successful ones.
private let flushTrampoline: iproto_flush_fn = { context, worker, error in
    for barrier in Unmanaged<CallbackContext>.fromOpaque(context!).takeUnretainedValue().replyBarriers {
        do throws(IProtoError) {
            try barrier(Int(worker))
        } catch let failure {
            error!.pointee.return_code = failure.code.rawValue
            withUnsafeMutableBytes(of: &error!.pointee.message) { message in
                let text = failure.message.utf8.prefix(message.count - 1)
                message.copyBytes(from: text)
                message[text.count] = 0
            }
            return -1
        }
    }
    return 0
}

/// Owns one C server: created bound, started once, stopped and joined before it is freed.
/// @unchecked: the C functions used after creation (start, stop, wait, stats) are thread-safe,
/// and `Server` calls start and wait under its own lifecycle rules.
final class CoreServer: @unchecked Sendable {
    private let handle: OpaquePointer
    private let context: CallbackContext
    let address: String
    let port: Int

    init(configuration: Configuration, context: CallbackContext) throws(ServerError) {
        self.context = context
        var config = iproto_config()
        config.port = configuration.port
        config.listen_fd = configuration.listenFileDescriptor ?? -1
        config.reuse_port = configuration.reusePort ? 1 : 0
        config.workers = UInt32(configuration.workers)
        config.max_body = UInt32(configuration.maxBodyBytes)
        config.max_output = configuration.maxOutputBytes
        config.max_connections = UInt32(configuration.maxConnections)
        config.max_connections_per_ip = UInt32(configuration.maxConnectionsPerIP)
        config.ipv6_prefix_length = UInt32(configuration.ipv6PrefixLength)
        config.read_timeout = configuration.readTimeout / .seconds(1)
        config.idle_timeout = configuration.idleTimeout / .seconds(1)
        config.shutdown_timeout = configuration.shutdownTimeout / .seconds(1)
        config.on_request = requestTrampoline
        config.on_connection = connectionTrampoline
        config.on_accept_error = acceptErrorTrampoline
        config.on_flush = context.replyBarriers.isEmpty ? nil : flushTrampoline
        config.context = Unmanaged.passUnretained(context).toOpaque()
        config.memory_budget = configuration.memoryBudgetBytes
        var error = [CChar](repeating: 0, count: 256)
        let created = configuration.host.withCString { host in
            config.host = host
            return iproto_server_create(&config, &error, error.count)
        }
        guard let created else { throw ServerError(message: String(cBuffer: error)) }
        handle = created
        var buffer = [CChar](repeating: 0, count: 96)
        iproto_server_address(handle, &buffer, buffer.count)
        address = String(cBuffer: buffer)
        port = Int(iproto_server_port(handle))
    }

    func start() throws(ServerError) {
        var error = [CChar](repeating: 0, count: 256)
        guard iproto_server_start(handle, &error, error.count) == 0 else {
            throw ServerError(message: String(cBuffer: error))
        }
    }

    func stop() { iproto_server_stop(handle) }

    func wait() { iproto_server_wait(handle) }

    func statistics() -> ServerStatistics {
        var raw = iproto_stats()
        iproto_server_stats(handle, &raw)
        var stats = ServerStatistics()
        stats.connectionsAccepted = raw.connections_accepted
        stats.connectionsActive = raw.connections_active
        stats.requests = raw.requests
        stats.bytesIn = raw.bytes_in
        stats.bytesOut = raw.bytes_out
        stats.bodyTooLarge = raw.body_too_large
        stats.outputPaused = raw.output_paused
        stats.turnsYielded = raw.turns_yielded
        stats.acceptErrors = raw.accept_errors
        stats.bufferedBytes = raw.buffered_bytes
        stats.memoryBudgetPaused = raw.budget_paused
        let closed = withUnsafeBytes(of: raw.connections_closed) { Array($0.bindMemory(to: UInt64.self)) }
        for (reason, core) in CloseReason.coreOrder {
            stats.connectionsClosed[reason] = closed[Int(core.rawValue)]
        }
        return stats
    }

    deinit {
        iproto_server_stop(handle)
        iproto_server_wait(handle)
        iproto_server_destroy(handle)
    }
}

extension CloseReason {
    /// Each reason with the C core's index for it.
    static let coreOrder: [(CloseReason, iproto_close_reason)] = [
        (.peer, IPROTO_CLOSE_PEER), (.idleTimeout, IPROTO_CLOSE_IDLE_TIMEOUT),
        (.readTimeout, IPROTO_CLOSE_READ_TIMEOUT), (.tooLarge, IPROTO_CLOSE_TOO_LARGE),
        (.overLimit, IPROTO_CLOSE_OVER_LIMIT), (.overIPLimit, IPROTO_CLOSE_OVER_IP_LIMIT),
        (.shutdown, IPROTO_CLOSE_SHUTDOWN), (.ioError, IPROTO_CLOSE_IO_ERROR),
    ]

    init(_ core: iproto_close_reason) {
        self = Self.coreOrder.first { $0.1 == core }?.0 ?? .ioError
    }
}

extension String {
    /// The text a C function wrote into `buffer`, up to its NUL.
    init(cBuffer buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
