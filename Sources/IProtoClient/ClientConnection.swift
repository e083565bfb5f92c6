import Foundation
import IProto
import Synchronization

/// One TCP connection of the pool, with any number of calls in flight.
///
/// Each call gets a fresh request_id; a reader thread parses replies and
/// resumes the waiting call by that id, so replies may complete in any order
/// and many calls share the connection (pipelining). The reader also expires
/// calls past their deadline. When the connection breaks, every call in
/// flight fails with `.connectionClosed`, and the next call reconnects, after
/// a backoff that doubles with each failed attempt.
final class ClientConnection: Sendable {
    private enum Call {
        /// An id handed out whose continuation is not registered yet.
        case reserved
        /// Cancelled before its continuation was registered.
        case cancelled
        case waiting(CheckedContinuation<Response, any Error>, deadline: ContinuousClock.Instant)
    }

    private struct State {
        var socket: Socket?
        var connecting = false
        var calls: [UInt32: Call] = [:]
        var nextRequestID: UInt32 = 1
        var backoff: Duration = .zero
        var nextAttempt: ContinuousClock.Instant?
        var closed = false
    }

    private let host: String
    private let port: Int
    private let configuration: ClientConfiguration
    private let state = Mutex(State())
    /// Held while a frame is written, so frames from concurrent calls never interleave.
    private let writing = Mutex(())

    init(host: String, port: Int, configuration: ClientConfiguration) {
        self.host = host
        self.port = port
        self.configuration = configuration
    }

    /// Sends a request whose body is `pieces`, one after another, and waits for its reply.
    func call(_ funcID: UInt32, pieces: [[UInt8]], timeout: Duration) async throws(ClientError) -> Response {
        let deadline = ContinuousClock.now + timeout
        let socket = try await connectedSocket(before: deadline)
        let id = state.withLock { state in
            while state.calls[state.nextRequestID] != nil { state.nextRequestID &+= 1 }
            defer { state.nextRequestID &+= 1 }
            state.calls[state.nextRequestID] = .reserved
            return state.nextRequestID
        }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let registered = state.withLock { state -> Bool in
                        guard case .reserved? = state.calls[id] else {
                            state.calls[id] = nil
                            return false
                        }
                        state.calls[id] = .waiting(continuation, deadline: deadline)
                        return true
                    }
                    guard registered else { return continuation.resume(throwing: ClientError.cancelled) }
                    do {
                        try writing.withLock { _ throws(ClientError) in
                            // The header goes out with the first piece; the others (large
                            // binaries) are sent from their own arrays behind it.
                            let length = pieces.reduce(0) { $0 + $1.count }
                            let head = Framing.request(funcID: funcID, requestID: id, bodyLength: length, start: pieces[0])
                            try socket.send([head] + pieces.dropFirst())
                        }
                    } catch {
                        finish(id, with: .failure(error as? ClientError ?? .connectionClosed))
                    }
                }
            } onCancel: {
                let resumeNow = state.withLock { state -> Bool in
                    switch state.calls[id] {
                    case .reserved?: state.calls[id] = .cancelled
                    case .waiting?: return true
                    default: break
                    }
                    return false
                }
                if resumeNow { finish(id, with: .failure(.cancelled)) }
            }
        } catch let error as ClientError {
            throw error
        } catch {
            throw .cancelled
        }
    }

    /// Resumes call `id` if it is still waiting.
    private func finish(_ id: UInt32, with result: Result<Response, ClientError>) {
        let continuation = state.withLock { state -> CheckedContinuation<Response, any Error>? in
            guard case .waiting(let continuation, _)? = state.calls[id] else { return nil }
            state.calls[id] = nil
            return continuation
        }
        continuation?.resume(with: result.mapError { $0 as any Error })
    }

    /// The open socket, connecting (or waiting out the backoff) first if needed.
    private func connectedSocket(before deadline: ContinuousClock.Instant) async throws(ClientError) -> Socket {
        enum Step { case use(Socket), wait, connect, fail(String) }
        while true {
            let step = state.withLock { state -> Step in
                if state.closed { return .fail("client closed") }
                if let socket = state.socket { return .use(socket) }
                if state.connecting { return .wait }
                if let next = state.nextAttempt, next > .now {
                    return next > deadline ? .fail("backing off after a failed attempt") : .wait
                }
                state.connecting = true
                return .connect
            }
            switch step {
            case .use(let socket):
                return socket
            case .fail(let reason):
                throw .connectionFailed(reason)
            case .wait:
                guard ContinuousClock.now < deadline else { throw .timedOut }
                do { try await Task.sleep(for: .milliseconds(2)) } catch { throw .cancelled }
            case .connect:
                do {
                    let timeout = min(configuration.connectTimeout, max(.milliseconds(1), deadline - .now))
                    let socket = try Socket.connect(host: host, port: port, timeout: timeout,
                                                    sendTimeout: configuration.callTimeout)
                    state.withLock { state in
                        state.socket = socket
                        state.connecting = false
                        state.backoff = .zero
                        state.nextAttempt = nil
                    }
                    Thread.detachNewThread { [self] in readReplies(from: socket) }
                    return socket
                } catch {
                    state.withLock { state in
                        state.connecting = false
                        state.backoff = state.backoff == .zero
                            ? configuration.reconnectBackoff : min(state.backoff * 2, configuration.maxReconnectBackoff)
                        state.nextAttempt = .now + state.backoff
                    }
                    throw error
                }
            }
        }
    }

    /// Bodies from this size on are received straight into their own array.
    static let directBodyBytes = 64 << 10

    /// The reader thread: replies to waiting calls, expires overdue ones, fails all when the socket breaks.
    private func readReplies(from socket: Socket) {
        var buffer: [UInt8] = []
        var failure = ClientError.connectionClosed
        reading: while true {
            switch socket.receive(into: &buffer, timeout: .milliseconds(20)) {
            case .closed:
                break reading
            case .timedOut:
                if state.withLock({ $0.socket !== socket }) { break reading }
            case .data:
                var offset = 0
                while let (header, body) = Framing.response(in: buffer, at: offset) {
                    finish(header.requestID, with: .success(Response(returnCode: header.returnCode, body: Array(buffer[body]))))
                    offset = body.upperBound
                }
                buffer.removeFirst(offset)
                guard let header = Framing.ResponseHeader(buffer) else { break }
                let length = Int(header.bodyLength)
                // A reply announcing more than the limit is not waited for (nor buffered).
                if length > configuration.maxResponseBody {
                    failure = .protocolViolation("response body of \(header.bodyLength) bytes")
                    break reading
                }
                // A large body (a file store's chunk) is received into the array the reply
                // keeps, not appended to the buffer and copied out of it again.
                let arrived = buffer.count - Framing.responseHeaderSize
                if length >= Self.directBodyBytes, arrived < length {
                    let body = socket.receive(count: length, after: buffer[Framing.responseHeaderSize...], pollEvery: .milliseconds(20)) {
                        expireOverdueCalls()
                        return state.withLock { $0.socket === socket }
                    }
                    guard let body else { break reading }
                    finish(header.requestID, with: .success(Response(returnCode: header.returnCode, body: body)))
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            expireOverdueCalls()
        }
        socket.shutdown()
        let orphans = state.withLock { state -> [CheckedContinuation<Response, any Error>] in
            if state.socket === socket { state.socket = nil }
            var orphans: [CheckedContinuation<Response, any Error>] = []
            for (id, call) in state.calls {
                if case .waiting(let continuation, _) = call {
                    orphans.append(continuation)
                    state.calls[id] = nil
                }
            }
            return orphans
        }
        for continuation in orphans { continuation.resume(throwing: failure) }
    }

    private func expireOverdueCalls() {
        let now = ContinuousClock.now
        let overdue = state.withLock { state in
            state.calls.compactMap { id, call -> UInt32? in
                guard case .waiting(_, let deadline) = call, deadline <= now else { return nil }
                return id
            }
        }
        for id in overdue { finish(id, with: .failure(.timedOut)) }
    }

    /// Fails the calls in flight and refuses new ones.
    func close() {
        let socket = state.withLock { state -> Socket? in
            state.closed = true
            defer { state.socket = nil }
            return state.socket
        }
        socket?.shutdown()
    }
}
