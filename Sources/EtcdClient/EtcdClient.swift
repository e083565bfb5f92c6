import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// etcd's v3 API through its JSON gateway (`POST /v3/<service>/<method>`), which
/// Debian's etcd 3.4 serves on its client URL: keys and values travel base64,
/// 64-bit integers come back as strings, and every field of a reply is optional
/// (zero values are left out). This type is mechanism only: one call, one
/// request, no retries of writes (a write that fails in flight has an unknown
/// outcome, which the caller must decide about).
///
/// Endpoints are tried in order; the first that answers is kept for later calls.
/// Blocking calls (a campaign waits until it wins) go through their own HTTP
/// client, so that they never starve the short calls of connections.
public final class EtcdClient: Sendable {
    public let endpoints: [String]
    /// The deadline of every call that is not meant to block.
    public let requestTimeout: Duration
    private let http: HTTPClient
    private let blockingHTTP: HTTPClient
    /// The endpoint that answered last; a stale read costs one failed attempt at most.
    private let preferred = Mutex(0)

    /// `endpoints` are client URLs, such as `http://127.0.0.1:2379`.
    public init(endpoints: [String], requestTimeout: Duration = .seconds(2)) {
        precondition(!endpoints.isEmpty, "etcd needs at least one endpoint")
        self.endpoints = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.requestTimeout = requestTimeout
        http = Self.shortCalls
        blockingHTTP = Self.blockingCalls
    }

    // Two connection pools for the whole process, never shut down (AsyncHTTPClient
    // traps when a client is released unshut, which a value-like type cannot promise).
    private static let shortCalls = HTTPClient(eventLoopGroupProvider: .singleton, configuration: poolConfiguration)
    private static let blockingCalls = HTTPClient(eventLoopGroupProvider: .singleton, configuration: poolConfiguration)
    private static var poolConfiguration: HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        configuration.timeout = .init(connect: .milliseconds(500))
        return configuration
    }

    // MARK: KV

    /// The key, or nil when it does not exist.
    public func get(_ key: String) async throws(EtcdError) -> EtcdKeyValue? {
        try await range(["key": base64(key)]).kvs.first
    }

    /// Every key starting with `prefix`, in key order.
    public func range(prefix: String) async throws(EtcdError) -> RangeResult {
        try await range(["key": base64(prefix), "range_end": base64(Self.prefixEnd(prefix))])
    }

    /// Writes `value` under `key` (attached to `lease`, if given); returns the revision of the write.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: LeaseID? = nil) async throws(EtcdError) -> Revision {
        var body: [String: Any] = ["key": base64(key), "value": Data(value).base64EncodedString()]
        if let lease { body["lease"] = String(lease.rawValue) }
        return try Self.revision(of: try await call("kv/put", body))
    }

    /// Deletes `key`; returns how many keys were deleted (0 or 1).
    @discardableResult
    public func delete(_ key: String) async throws(EtcdError) -> Int {
        let reply = try await call("kv/deleterange", ["key": base64(key)])
        return Int(Self.int64(reply["deleted"]) ?? 0)
    }

    /// Runs `success` if every comparison holds, `failure` otherwise, atomically.
    public func txn(_ compare: [Compare], success: [TxnOperation], failure: [TxnOperation] = []) async throws(EtcdError) -> TxnResult {
        let body: [String: Any] = [
            "compare": compare.map(Self.json),
            "success": success.map(Self.json),
            "failure": failure.map(Self.json),
        ]
        let reply = try await call("kv/txn", body)
        let responses = reply["responses"] as? [[String: Any]] ?? []
        var ranges: [[EtcdKeyValue]] = []
        for response in responses {
            if let range = response["response_range"] as? [String: Any] {
                ranges.append(try Self.keyValues(range["kvs"]))
            }
        }
        return TxnResult(succeeded: reply["succeeded"] as? Bool ?? false, revision: try Self.revision(of: reply), ranges: ranges)
    }

    // MARK: Leases

    /// A new lease of `ttl` seconds; returns its id and the TTL etcd granted
    /// (etcd raises a TTL below its minimum, which follows from its election timeout).
    public func grantLease(ttl: Int) async throws(EtcdError) -> (id: LeaseID, ttl: Int) {
        let reply = try await call("lease/grant", ["TTL": ttl])
        guard let id = Self.int64(reply["ID"]) else { throw .malformedReply("lease/grant without an ID") }
        return (LeaseID(rawValue: id), Int(Self.int64(reply["TTL"]) ?? Int64(ttl)))
    }

    /// Renews `lease` once; returns its TTL, or throws `.leaseNotFound` when it is gone.
    /// (The gateway cannot stream a keepalive: each renewal is one request.)
    public func keepAlive(_ lease: LeaseID) async throws(EtcdError) -> Int {
        let reply = try await call("lease/keepalive", ["ID": String(lease.rawValue)])
        let result = reply["result"] as? [String: Any] ?? reply
        guard let ttl = Self.int64(result["TTL"]), ttl > 0 else { throw .leaseNotFound }
        return Int(ttl)
    }

    /// Revokes `lease`, deleting every key attached to it.
    public func revoke(_ lease: LeaseID) async throws(EtcdError) {
        do {
            _ = try await call("lease/revoke", ["ID": String(lease.rawValue)])
        } catch .leaseNotFound {
            // Already gone: what revoking wanted.
        }
    }

    // MARK: Elections

    /// Waits until this caller leads election `name` with `value`, its candidacy
    /// attached to `lease`; blocks with no deadline (cancel the task to withdraw).
    /// A win can be stale if the lease expired while waiting: confirm it (see
    /// ``isCurrent(_:)``) before acting as leader.
    public func campaign(_ name: String, value: [UInt8], lease: LeaseID) async throws(EtcdError) -> LeaderKey {
        let body: [String: Any] = ["name": base64(name), "lease": String(lease.rawValue), "value": Data(value).base64EncodedString()]
        let reply = try await call("election/campaign", body, client: blockingHTTP, timeout: nil)
        guard let leader = reply["leader"] as? [String: Any], let key = Self.text(leader["key"]),
            let revision = Self.int64(leader["rev"])
        else { throw .malformedReply("campaign without a leader key") }
        return LeaderKey(name: name, key: key, revision: Revision(revision), lease: lease)
    }

    /// The current leader of election `name` (its key and value), or nil when there is none.
    public func leader(_ name: String) async throws(EtcdError) -> EtcdKeyValue? {
        // The election's keys are `name/<lease>`; the leader holds the oldest.
        // A range sorted by create revision answers the same as election/leader,
        // without its "no leader" error (HTTP 500 with a message).
        let body: [String: Any] = [
            "key": base64(name + "/"), "range_end": base64(Self.prefixEnd(name + "/")),
            "sort_order": "ASCEND", "sort_target": "CREATE", "limit": 1,
        ]
        return try await range(body).kvs.first
    }

    /// True while `leader` still holds its election: its key exists with the same create revision.
    public func isCurrent(_ leader: LeaderKey) async throws(EtcdError) -> Bool {
        try await txn([Compare(key: leader.key, .createRevision(leader.revision))], success: []).succeeded
    }

    /// Gives up leadership: deletes the leader key only if it is still `leader`'s,
    /// so that a deposed leader never removes its successor.
    public func resign(_ leader: LeaderKey) async throws(EtcdError) {
        _ = try await txn([Compare(key: leader.key, .createRevision(leader.revision))], success: [.delete(key: leader.key)])
    }

    // MARK: Transport

    private func range(_ body: [String: Any]) async throws(EtcdError) -> RangeResult {
        let reply = try await call("kv/range", body)
        return RangeResult(kvs: try Self.keyValues(reply["kvs"]), revision: try Self.revision(of: reply))
    }

    /// POSTs `body` to `/v3/<path>` on the preferred endpoint, then on the others.
    private func call(
        _ path: String, _ body: [String: Any], client: HTTPClient? = nil, timeout: Duration?? = .none
    ) async throws(EtcdError) -> [String: Any] {
        let payload: Data
        do {
            payload = try JSONSerialization.data(withJSONObject: body)
        } catch {
            throw .malformedReply("cannot encode a request: \(error)")
        }
        let deadline: Duration? = timeout ?? requestTimeout
        var lastFailure = "no endpoint tried"
        let first = preferred.withLock { $0 }
        for attempt in 0..<endpoints.count {
            let index = (first + attempt) % endpoints.count
            var request = HTTPClientRequest(url: endpoints[index] + "/v3/" + path)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: payload))
            let response: HTTPClientResponse
            let bytes: ByteBuffer
            do {
                response = try await (client ?? http).execute(
                    request, timeout: deadline.map(Self.timeAmount) ?? .hours(24 * 365))
                bytes = try await response.body.collect(upTo: 16 << 20)
            } catch {
                lastFailure = "\(endpoints[index]): \(error)"
                continue
            }
            preferred.withLock { $0 = index }
            let object = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any]
            guard let object else {
                throw .malformedReply("\(path): HTTP \(response.status.code), not a JSON object")
            }
            if response.status == .ok { return object }
            let code = Int(Self.int64(object["code"]) ?? -1)
            let message = object["message"] as? String ?? object["error"] as? String ?? "HTTP \(response.status.code)"
            if code == 5 || message.contains("lease not found") { throw .leaseNotFound }
            if response.status == .serviceUnavailable || code == 14 {
                lastFailure = "\(endpoints[index]): \(message)"
                continue
            }
            throw .refused(code: code, message: message)
        }
        throw .unavailable(lastFailure)
    }

    private static func timeAmount(_ duration: Duration) -> TimeAmount {
        .nanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    // MARK: JSON

    /// The smallest key greater than every key starting with `prefix`.
    static func prefixEnd(_ prefix: String) -> [UInt8] {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return [0]  // every key
    }

    private func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
    private func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    private static func json(_ compare: Compare) -> [String: Any] {
        var object: [String: Any] = ["key": Data(compare.key.utf8).base64EncodedString(), "result": "EQUAL"]
        switch compare.target {
        case .createRevision(let revision):
            object["target"] = "CREATE"
            object["create_revision"] = String(revision.rawValue)
        case .modRevision(let revision):
            object["target"] = "MOD"
            object["mod_revision"] = String(revision.rawValue)
        case .value(let value):
            object["target"] = "VALUE"
            object["value"] = Data(value).base64EncodedString()
        case .lease(let lease):
            object["target"] = "LEASE"
            object["lease"] = String(lease.rawValue)
        }
        return object
    }

    private static func json(_ operation: TxnOperation) -> [String: Any] {
        switch operation {
        case .put(let key, let value, let lease):
            var put: [String: Any] = ["key": Data(key.utf8).base64EncodedString(), "value": Data(value).base64EncodedString()]
            if let lease { put["lease"] = String(lease.rawValue) }
            return ["request_put": put]
        case .get(let key):
            return ["request_range": ["key": Data(key.utf8).base64EncodedString()]]
        case .delete(let key):
            return ["request_delete_range": ["key": Data(key.utf8).base64EncodedString()]]
        }
    }

    /// A JSON number or a string holding one (the gateway sends int64 as strings).
    static func int64(_ value: Any?) -> Int64? {
        switch value {
        case let string as String: Int64(string)
        case let number as NSNumber: number.int64Value
        default: nil
        }
    }

    private static func text(_ base64: Any?) -> String? {
        guard let string = base64 as? String, let data = Data(base64Encoded: string) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    private static func revision(of reply: [String: Any]) throws(EtcdError) -> Revision {
        guard let header = reply["header"] as? [String: Any], let revision = int64(header["revision"]) else {
            throw .malformedReply("a reply without header.revision")
        }
        return Revision(revision)
    }

    private static func keyValues(_ value: Any?) throws(EtcdError) -> [EtcdKeyValue] {
        guard let list = value as? [[String: Any]] else { return [] }
        var result: [EtcdKeyValue] = []
        for kv in list {
            guard let key = text(kv["key"]) else { throw .malformedReply("a key-value without a key") }
            let value = (kv["value"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? []
            result.append(
                EtcdKeyValue(
                    key: key, value: value,
                    createRevision: Revision(int64(kv["create_revision"]) ?? 0),
                    modRevision: Revision(int64(kv["mod_revision"]) ?? 0),
                    version: int64(kv["version"]) ?? 0,
                    lease: int64(kv["lease"]).flatMap { $0 == 0 ? nil : LeaseID(rawValue: $0) }))
        }
        return result
    }
}
