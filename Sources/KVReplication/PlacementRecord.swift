/// Which nodes hold keys, as the leader decided and recorded in etcd
/// (`/iproto-kv/CLUSTER/placement`), and the sets it replaced that may still
/// hold keys their successors lack.
///
/// Placement changes when a node joins, when a node has been gone longer than
/// the grace period (its keys are copied to the nodes that now own them), and
/// when such a node comes back. Until every node of the new set has finished
/// a repair round that began after the change (`settled`), the leader reads
/// from a read quorum under every set in ``previous`` as well as under
/// ``nodes``: a write acknowledged under an older set is found there.
public struct PlacementRecord: Sendable, Equatable, Codable {
    /// Incremented by each change.
    public var version: Int
    public var nodes: [String]
    /// Older node sets, newest last, kept until the change settles.
    public var previous: [[String]]

    public init(version: Int, nodes: [String], previous: [[String]] = []) {
        self.version = version
        self.nodes = nodes
        self.previous = previous
    }

    /// The node sets a read must consult: the current one first.
    public var readSets: [[NodeID]] { ([nodes] + Array(previous.reversed())).map { set in set.map { NodeID(rawValue: $0) } } }
}

/// The leader's placement decisions. Pure: the node's shell gathers the inputs
/// (members from etcd, liveness from heartbeats, repair progress from pings)
/// and writes what this returns to etcd with a compare-and-swap.
public enum PlacementPlanner {
    public struct Inputs: Sendable {
        /// Every registered member.
        public var members: [NodeID]
        /// The members that answered a heartbeat within the liveness timeout.
        public var alive: Set<NodeID>
        /// Members the leader has not heard from for at least the grace period,
        /// counted from when it became leader (it cannot know about earlier silence).
        public var goneLongerThanGrace: Set<NodeID>
        /// Each member's newest placement version at the start of a complete repair round.
        public var repairedThrough: [NodeID: Int]

        public init(members: [NodeID], alive: Set<NodeID>, goneLongerThanGrace: Set<NodeID>, repairedThrough: [NodeID: Int]) {
            self.members = members
            self.alive = alive
            self.goneLongerThanGrace = goneLongerThanGrace
            self.repairedThrough = repairedThrough
        }
    }

    /// The next record and why, or nil when `current` stands.
    ///
    /// - A member joins the set once it is alive; a member that was gone longer
    ///   than the grace period leaves it (unless that would leave nobody); a
    ///   member gone and back rejoins.
    /// - A change keeps the replaced set in `previous`; a record whose every
    ///   node is alive and has repaired through its version drops `previous`.
    public static func next(after current: PlacementRecord?, _ inputs: Inputs) -> (record: PlacementRecord, reason: String)? {
        let members = Set(inputs.members)
        guard let current else {
            let nodes = inputs.members.filter { inputs.alive.contains($0) || !inputs.goneLongerThanGrace.contains($0) }
            return (PlacementRecord(version: 1, nodes: nodes.map { $0.rawValue }.sorted()), "first placement: \(nodes.count) nodes")
        }
        let placed = Set(current.nodes.map { NodeID(rawValue: $0) })
        var wanted = placed.intersection(members)
        var changes: [String] = []
        for member in inputs.members where !placed.contains(member) && inputs.alive.contains(member) {
            wanted.insert(member)
            changes.append("\(member) joins")
        }
        for node in placed where members.contains(node) && inputs.goneLongerThanGrace.contains(node) && !inputs.alive.contains(node) {
            guard wanted.count > 1 else { break }
            wanted.remove(node)
            changes.append("\(node) gone longer than the grace period")
        }
        for node in placed where !members.contains(node) { changes.append("\(node) was replaced") }
        if wanted != placed {
            let record = PlacementRecord(
                version: current.version + 1, nodes: wanted.map { $0.rawValue }.sorted(), previous: current.previous + [current.nodes])
            return (record, changes.joined(separator: "; "))
        }
        if !current.previous.isEmpty,
            current.nodes.allSatisfy({ inputs.alive.contains(NodeID($0)) && (inputs.repairedThrough[NodeID($0)] ?? 0) >= current.version })
        {
            return (PlacementRecord(version: current.version, nodes: current.nodes), "placement \(current.version) settled: every node repaired")
        }
        return nil
    }
}
