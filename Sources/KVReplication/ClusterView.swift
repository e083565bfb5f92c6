/// One node's picture of the cluster at one moment: who is registered, who
/// answered its heartbeats lately, who leads. Pure: the node's shell refreshes
/// it from etcd and from heartbeats, and every decision reads a copy.
public struct ClusterView: Sendable, Equatable {
    public struct Node: Sendable, Hashable {
        public var id: NodeID
        public var address: String
        public init(id: NodeID, address: String) {
            self.id = id
            self.address = address
        }
    }

    /// Every registered node, in id order. Nodes are never removed, so that a
    /// restart does not move keys (docs/cluster.md, "Placement").
    public var nodes: [Node]
    /// The nodes that answered a heartbeat within the liveness timeout (this node included).
    public var alive: Set<NodeID>
    public var leader: Node?
    public var replicationFactor: Int
    /// The leader's placement; nil until the first is recorded, when every registered node places keys.
    public var placement: PlacementRecord?

    public init(nodes: [Node] = [], alive: Set<NodeID> = [], leader: Node? = nil, replicationFactor: Int, placement: PlacementRecord? = nil) {
        self.nodes = nodes
        self.alive = alive
        self.leader = leader
        self.replicationFactor = replicationFactor
        self.placement = placement
    }

    public var quorum: Quorum { Quorum(replicationFactor: replicationFactor) }

    /// The key's replicas: the top `replicationFactor` placed nodes by rendezvous score.
    public func owners(of key: String) -> [Node] {
        owners(of: key, among: placement.map { $0.nodes.map { NodeID(rawValue: $0) } } ?? nodes.map(\.id))
    }

    /// The key's replicas under the current placement and under every older one
    /// not yet settled, current first: a read needs a read quorum of each.
    public func readSets(of key: String) -> [[Node]] {
        guard let placement else { return [owners(of: key)] }
        return placement.readSets.map { owners(of: key, among: $0) }
    }

    private func owners(of key: String, among ids: [NodeID]) -> [Node] {
        Placement.owners(of: key, among: ids, count: replicationFactor).compactMap { id in nodes.first { $0.id == id } }
    }

    /// What is wrong with the cluster as a whole, in words for operators.
    public var warnings: [String] {
        var warnings: [String] = []
        let live = nodes.filter { alive.contains($0.id) }.count
        if replicationFactor > live {
            warnings.append(
                "replication factor \(replicationFactor) exceeds the \(live) live node\(live == 1 ? "" : "s"): "
                    + "keys have fewer copies than asked")
        }
        if nodes.count < replicationFactor {
            warnings.append("only \(nodes.count) node\(nodes.count == 1 ? " is" : "s are") registered for replication factor \(replicationFactor)")
        }
        let writable = live >= quorum.write
        if !writable { warnings.append("writes fail: \(quorum.writeRefusal(reachable: live))") }
        if leader == nil { warnings.append("no leader is elected") }
        return warnings
    }

    /// How many keys' worth of copies are missing: replication factor minus live nodes, at least 0.
    public var replicationShortfall: Int { max(0, replicationFactor - nodes.filter { alive.contains($0.id) }.count) }
}
