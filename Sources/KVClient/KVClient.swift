import IProto
import IProtoClient
import KVAPI
import Synchronization

/// A client of the key-value cluster that talks to the leader and follows it.
///
/// Give it any nodes' addresses. A call goes to the node it believes leads; a
/// "not the leader" refusal names the leader, and the call is sent there. When
/// the node does not answer, the next one from the last node list is tried
/// (``KVClientEvent/switchedNode(from:to:why:)``). A heartbeat (every
/// ``KVClientConfiguration/heartbeatInterval`` once ``startHeartbeats()``
/// runs) keeps that list and the leader current.
///
/// Outcomes are honest: a write whose request may have reached the leader but
/// got no answer (timeout, connection lost) throws ``KVClientError/outcomeUnknown(_:)``
/// and is not retried, since it may have taken effect; a request that surely
/// was not carried out (refused, or never sent) is retried on the next node.
public final class KVClient: Sendable {
    public let configuration: KVClientConfiguration

    private struct State {
        var nodes: [String]
        var current: String
        var status: ClusterStatus?
        var clients: [String: IProtoClient] = [:]
        var closed = false
    }

    private let state: Mutex<State>
    private let continuation: AsyncStream<KVClientEvent>.Continuation
    /// What the client noticed: node switches, leader changes, warnings.
    public let events: AsyncStream<KVClientEvent>
    private let heartbeats = Mutex<Task<Void, Never>?>(nil)

    /// `nodes` are "host:port" addresses of any nodes of the cluster (at least one).
    public init(nodes: [String], configuration: KVClientConfiguration = KVClientConfiguration()) {
        precondition(!nodes.isEmpty, "KVClient needs at least one node address")
        self.configuration = configuration
        state = Mutex(State(nodes: nodes, current: nodes[0]))
        (events, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(64))
    }

    deinit { continuation.finish() }

    /// The node calls go to now.
    public var currentNode: String { state.withLock { $0.current } }

    /// The last heartbeat's answer, if any.
    public var lastStatus: ClusterStatus? { state.withLock { $0.status } }

    // MARK: Calls

    /// Stores `value` under `key` (a UUID4), durably on a quorum of the key's replicas.
    public func set(_ key: String, _ value: KVValue) async throws(KVClientError) {
        _ = try await leaderCall(write: true) { client throws(ClientError) in
            try await client.set(key: key, value: value.messagePack, timeout: self.configuration.callTimeout)
            return MessagePackValue.nil
        }
    }

    /// The value stored under `key`, or nil when it is absent.
    public func get(_ key: String) async throws(KVClientError) -> KVValue? {
        let reply = try await leaderCall(write: false) { client throws(ClientError) in
            try await client.get(key: key, timeout: self.configuration.callTimeout)
        }
        return KVValue(reply)
    }

    /// Deletes `key`; deleting an absent key succeeds.
    public func delete(_ key: String) async throws(KVClientError) {
        _ = try await leaderCall(write: true) { client throws(ClientError) in
            try await client.delete(key: key, timeout: self.configuration.callTimeout)
            return MessagePackValue.nil
        }
    }

    /// Asks the current node (then the others) for the cluster's state, and remembers it.
    @discardableResult
    public func heartbeat() async throws(KVClientError) -> ClusterStatus {
        var lastError: KVClientError = .unavailable("no node answered")
        for address in candidates() {
            do {
                let reply = try await client(address).heartbeat(timeout: configuration.callTimeout)
                guard let status = ClusterStatus(reply) else {
                    throw KVClientError.protocolViolation("\(address) answered a heartbeat that is not a map of nodes")
                }
                adopt(status, from: address)
                return status
            } catch let error as KVClientError {
                lastError = error
            } catch {
                lastError = .unavailable("\(address): \(error)")
                switchAway(from: address, why: "\(error)")
            }
        }
        throw lastError
    }

    /// Heartbeats in the background every ``KVClientConfiguration/heartbeatInterval``
    /// until ``close()``, switching nodes when the current one stops answering.
    public func startHeartbeats() {
        heartbeats.withLock { task in
            guard task == nil else { return }
            task = Task { [weak self] in
                while !Task.isCancelled, let self {
                    _ = try? await self.heartbeat()
                    try? await Task.sleep(for: self.configuration.heartbeatInterval)
                }
            }
        }
    }

    public func close() {
        heartbeats.withLock { $0?.cancel() }
        let clients = state.withLock { state in
            state.closed = true
            defer { state.clients = [:] }
            return Array(state.clients.values)
        }
        for client in clients { client.close() }
        continuation.finish()
    }

    // MARK: Routing

    /// Sends `call` to the leader, following "not the leader" answers and
    /// skipping nodes that do not answer, up to ``KVClientConfiguration/maxAttempts`` tries.
    private func leaderCall(
        write: Bool, _ call: @Sendable (IProtoClient) async throws(ClientError) -> MessagePackValue
    ) async throws(KVClientError) -> MessagePackValue {
        var lastError: KVClientError = .unavailable("no node answered")
        for attempt in 0..<configuration.maxAttempts {
            if attempt > 0 { try? await Task.sleep(for: configuration.retryDelay * Double(min(attempt, 8))) }
            let address = currentNode
            do {
                return try await call(client(address))
            } catch {
                switch error {
                case .server(let refusal) where refusal.code == .kvNotLeader:
                    let leader = String(refusal.message.split(separator: " ").last ?? "")
                    if !leader.isEmpty, leader != address {
                        move(to: leader, why: "\(address) is not the leader")
                    }
                    lastError = .refused(refusal)
                case .server(let refusal) where refusal.code == .kvNoLeader || refusal.code == .shuttingDown:
                    // Nothing was done; an election is under way or the node is stopping.
                    if refusal.code == .shuttingDown { switchAway(from: address, why: "it is shutting down") }
                    lastError = .refused(refusal)
                case .server(let refusal) where refusal.code == .kvOutcomeUnknown:
                    throw .outcomeUnknown(refusal.message)
                case .server(let refusal):
                    throw .refused(refusal)
                case .connectionFailed(let why), .overloaded(let why):
                    // Never sent: safe to send elsewhere.
                    switchAway(from: address, why: why)
                    lastError = .unavailable("\(address): \(why)")
                case .timedOut, .connectionClosed:
                    switchAway(from: address, why: "\(error)")
                    if write { throw .outcomeUnknown("\(address): \(error) before the answer") }
                    lastError = .unavailable("\(address): \(error)")
                case .cancelled:
                    throw .cancelled
                case .protocolViolation(let why):
                    throw .protocolViolation(why)
                }
            }
        }
        throw lastError
    }

    private func client(_ address: String) -> IProtoClient {
        state.withLock { state in
            if let client = state.clients[address] { return client }
            var configuration = ClientConfiguration()
            configuration.callTimeout = self.configuration.callTimeout
            configuration.connectTimeout = self.configuration.callTimeout
            configuration.maxReconnectBackoff = .milliseconds(500)
            let client = IProtoClient(address: address, configuration: configuration)
            state.clients[address] = client
            return client
        }
    }

    /// The current node first, then every other known node.
    private func candidates() -> [String] {
        state.withLock { state in
            var list = [state.current]
            let known = (state.status?.nodes.map(\.address) ?? []) + state.nodes
            for address in known where !list.contains(address) { list.append(address) }
            return list
        }
    }

    private func move(to address: String, why: String) {
        let from = state.withLock { state -> String? in
            guard state.current != address else { return nil }
            defer { state.current = address }
            return state.current
        }
        if let from { continuation.yield(.switchedNode(from: from, to: address, why: why)) }
    }

    /// Moves off `address` to the leader if another node is known to lead, else to the next known node.
    private func switchAway(from address: String, why: String) {
        let next = state.withLock { state -> String? in
            guard state.current == address else { return nil }
            var known = state.status?.nodes.filter { $0.alive }.map(\.address) ?? []
            known += state.nodes
            if let leader = state.status?.leader, leader != address { return leader }
            guard let index = known.firstIndex(of: address) else { return known.first { $0 != address } }
            return (known[(index + 1)...] + known[..<index]).first { $0 != address }
        }
        if let next { move(to: next, why: "\(address) does not answer (\(why))") }
    }

    private func adopt(_ status: ClusterStatus, from address: String) {
        let previous = state.withLock { state -> ClusterStatus? in
            defer { state.status = status }
            return state.status
        }
        if let leader = status.leader, leader != previous?.leader {
            continuation.yield(.leaderChanged(leader))
            move(to: leader, why: "\(leader) leads")
        }
        if status.warnings != previous?.warnings, !status.warnings.isEmpty {
            continuation.yield(.warnings(status.warnings))
        }
        let known = Set(previous?.nodes.map(\.address) ?? [])
        for node in status.nodes where previous != nil && !known.contains(node.address) {
            continuation.yield(.nodeJoined(node.address))
        }
    }
}
