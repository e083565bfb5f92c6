import EtcdClient
import Foundation

/// A clustered service's keys in etcd, under one prefix per cluster:
///
/// | key | value | lifetime |
/// | --- | --- | --- |
/// | `PREFIX/config` | `{"replication_factor": N}` | created once, by the first node |
/// | `PREFIX/members/ID` | `{"id": …, "address": "host:port"}` | permanent: a node id is never reused |
/// | `PREFIX/leader/LEASE` | the leader's member JSON | the election (its lease) |
/// | `PREFIX/NAME` | a service's own records (``record(_:)``), written by compare-and-swap | the service's |
///
/// Members stay registered when they stop: liveness is measured by the nodes
/// (heartbeats), and placement must not reshuffle keys whenever a node restarts.
public struct ClusterRegistry: Sendable {
    public let etcd: EtcdClient
    public let prefix: String

    public init(etcd: EtcdClient, cluster: String, service: String) {
        self.etcd = etcd
        prefix = "/\(service)/\(cluster)"
    }

    public var electionName: String { prefix + "/leader" }
    var configKey: String { prefix + "/config" }
    var membersPrefix: String { prefix + "/members/" }

    /// The cluster's replication factor: `proposed` if this call created the
    /// configuration, else the value stored by the node that did.
    public func replicationFactor(proposing proposed: Int) async throws(CoordinationError) -> Int {
        let value = Array(#"{"replication_factor":\#(proposed)}"#.utf8)
        let result = try await wrap {
            try await etcd.txn([.absent(configKey)], success: [.put(key: configKey, value: value, lease: nil)], failure: [.get(key: configKey)])
        }
        if result.succeeded { return proposed }
        guard let stored = result.ranges.first?.first,
            let object = try? JSONSerialization.jsonObject(with: Data(stored.value)) as? [String: Any],
            let factor = object["replication_factor"] as? Int
        else { throw .malformedRecord(configKey) }
        return factor
    }

    /// Registers (or re-registers, after an address change) `member`. A member
    /// registered before at the same address under another id is a node this
    /// one replaces (its data directory is gone, since the id lives there): it
    /// is removed in the same transaction, and returned, so that its keys are
    /// copied again from the other replicas.
    @discardableResult
    public func register(_ member: Member) async throws(CoordinationError) -> [Member] {
        let (members, _) = try await members()
        let replaced = members.filter { $0.address == member.address && $0.id != member.id }
        let operations: [TxnOperation] = [.put(key: membersPrefix + member.id, value: member.json, lease: nil)]
            + replaced.map { .delete(key: membersPrefix + $0.id) }
        _ = try await wrap { try await etcd.txn([], success: operations) }
        return replaced
    }

    /// Every registered member, in id order, and the revision they were read at.
    public func members() async throws(CoordinationError) -> (members: [Member], revision: Revision) {
        let result = try await wrap { try await etcd.range(prefix: membersPrefix) }
        var members: [Member] = []
        for kv in result.kvs {
            guard let member = Member(json: kv.value) else { throw .malformedRecord(kv.key) }
            members.append(member)
        }
        return (members, result.revision)
    }

    /// A service's own record `PREFIX/NAME` and the revision it was last written at, or nil.
    public func record(_ name: String) async throws(CoordinationError) -> (value: [UInt8], modRevision: Revision)? {
        guard let kv = try await wrap({ try await etcd.get(prefix + "/" + name) }) else { return nil }
        return (kv.value, kv.modRevision)
    }

    /// Writes `PREFIX/NAME` only if it was last written at `modRevision` (nil:
    /// only if it does not exist); false when someone else wrote it first.
    public func swapRecord(_ name: String, _ value: [UInt8], ifModRevision modRevision: Revision?) async throws(CoordinationError) -> Bool {
        let key = prefix + "/" + name
        let guardCompare = modRevision.map { Compare(key: key, .modRevision($0)) } ?? .absent(key)
        return try await wrap { try await etcd.txn([guardCompare], success: [.put(key: key, value: value, lease: nil)]) }.succeeded
    }

    /// The current leader's member record and its epoch (the leader key's create revision), or nil.
    public func leader() async throws(CoordinationError) -> (member: Member, epoch: Revision)? {
        guard let kv = try await wrap({ try await etcd.leader(electionName) }) else { return nil }
        guard let member = Member(json: kv.value) else { throw .malformedRecord(kv.key) }
        return (member, kv.createRevision)
    }

    /// Waits until `member` leads, then confirms the win is current (a campaign
    /// whose lease expired while it waited can still "win"): returns the leader key.
    public func campaign(as member: Member, session: Session) async throws(CoordinationError) -> LeaderKey {
        let key = try await wrap { try await etcd.campaign(electionName, value: member.json, lease: session.lease) }
        guard session.lost == nil, try await wrap({ try await etcd.isCurrent(key) }) else {
            throw .leaseLost("won election \(electionName) at revision \(key.revision) with a lapsed lease")
        }
        return key
    }

    /// Gives up leadership if `key` still holds it.
    public func resign(_ key: LeaderKey) async {
        try? await etcd.resign(key)
    }

    /// Runs an etcd call, its failure typed as this layer's.
    private func wrap<T>(_ body: () async throws -> T) async throws(CoordinationError) -> T {
        do {
            return try await body()
        } catch let error as EtcdError {
            throw .etcd(error)
        } catch {
            throw .etcd(.unavailable("\(error)"))
        }
    }
}

/// One node of a cluster as registered in etcd.
public struct Member: Hashable, Sendable {
    /// Chosen once, at the node's first start, and kept in its data directory.
    public var id: String
    /// Where the node serves, "host:port".
    public var address: String

    public init(id: String, address: String) {
        self.id = id
        self.address = address
    }

    var json: [UInt8] {
        let object = ["id": id, "address": address]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map { [UInt8]($0) } ?? []
    }

    init?(json: [UInt8]) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any],
            let id = object["id"] as? String, let address = object["address"] as? String
        else { return nil }
        self.init(id: id, address: address)
    }
}

/// Why a coordination step failed.
public enum CoordinationError: Error, Sendable, CustomStringConvertible {
    case etcd(EtcdError)
    /// A key of the cluster holds something this version does not understand.
    case malformedRecord(String)
    /// The session's lease lapsed, so leadership cannot be held.
    case leaseLost(String)

    public var description: String {
        switch self {
        case .etcd(let error): "\(error)"
        case .malformedRecord(let key): "etcd key \(key) holds a malformed record"
        case .leaseLost(let why): "lease lost: \(why)"
        }
    }
}
