import StableHashing

/// What placement knows of a storage node.
public struct NodeLoad: Hashable, Sendable {
    public var id: String
    public var capacityBytes: Int64
    /// Bytes of the parts the node holds for committed files.
    public var usedBytes: Int64
    /// Bytes chosen for it by uploads still in flight (``Reservations``).
    public var reservedBytes: Int64
    /// Whether the gateway reached it lately; a dead node takes no new parts.
    public var alive: Bool

    public init(id: String, capacityBytes: Int64, usedBytes: Int64, reservedBytes: Int64 = 0, alive: Bool = true) {
        self.id = id
        self.capacityBytes = capacityBytes
        self.usedBytes = usedBytes
        self.reservedBytes = reservedBytes
        self.alive = alive
    }

    /// Used and reserved bytes as a share of the capacity.
    public var fill: Double { fill(adding: 0) }

    public func fill(adding bytes: Int64) -> Double {
        capacityBytes > 0 ? Double(usedBytes + reservedBytes + bytes) / Double(capacityBytes) : .infinity
    }

    public func hasRoom(for bytes: Int64) -> Bool { usedBytes + reservedBytes + bytes <= capacityBytes }
}

public struct PlacementError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// Fewer live nodes than a file has parts.
        case tooFewNodes
        /// Enough live nodes, but too few with room for a part.
        case noRoom
    }

    public let kind: Kind
    public let description: String
    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// Where a new file's parts go (docs/file-store.md, "Placement"). Pure: the
/// caller passes every node's load, reservations included, and records the
/// answer with the file, so that reads never recompute it.
public enum FilePlacement {
    /// `parts` distinct live nodes for a file whose parts take `partBytes` each:
    /// the ones whose fill would be lowest with the part added, ties (nodes
    /// equally full, as at the start) broken by the file's rendezvous score on
    /// each node, so that equal nodes share files evenly and the same inputs
    /// give the same answer everywhere. Part i goes to the i-th node.
    ///
    /// Without moving data a node takes at most one part of a file, so a node
    /// that joins a full cluster catches up by at most one part per upload:
    /// lowest fill puts every node that is behind into every new file until it
    /// has caught up, which is that bound.
    public static func choose(parts: Int, partBytes: Int64, file: String, among nodes: [NodeLoad]) throws(PlacementError) -> [String] {
        precondition(parts > 0 && partBytes >= 0)
        let alive = nodes.filter(\.alive)
        let candidates = alive.filter { $0.hasRoom(for: partBytes) }
        guard candidates.count >= parts else {
            if alive.count < parts {
                throw PlacementError(.tooFewNodes, "a file needs \(parts) storage nodes and \(alive.count) of \(nodes.count) are up")
            }
            throw PlacementError(.noRoom, "a file needs \(parts) storage nodes with \(partBytes) bytes free and only \(candidates.count) have them")
        }
        let ranked = candidates.map { node in
            (node: node, fill: node.fill(adding: partBytes), score: StableHash.rendezvousScore(key: file, node: node.id))
        }.sorted { a, b in
            if a.fill != b.fill { return a.fill < b.fill }
            if a.score != b.score { return a.score > b.score }
            return a.node.id < b.node.id
        }
        return ranked.prefix(parts).map(\.node.id)
    }

    /// max fill ÷ min fill over `nodes` (1 when all are equal or empty).
    public static func spread(_ nodes: [NodeLoad]) -> Double {
        let fills = nodes.map(\.fill)
        guard let low = fills.min(), let high = fills.max(), high > 0 else { return 1 }
        return low > 0 ? high / low : .infinity
    }

    /// ``spread(_:)`` over the live nodes that have a capacity, as the figure the
    /// gateway publishes and rebalance reports: 1 with no such node, and 0 (not
    /// infinity, which a gauge cannot carry) while some live node is still empty.
    public static func liveSpread(_ nodes: [NodeLoad]) -> Double {
        let live = nodes.filter { $0.alive && $0.capacityBytes > 0 }
        guard !live.isEmpty else { return 1 }
        let spread = spread(live)
        return spread.isFinite ? spread : 0
    }
}

/// The bytes chosen for uploads in flight, per node: an upload reserves each
/// part's size on its node when placement chooses the node, and releases it
/// when the file is committed (its parts then count as used) or abandoned, so
/// that concurrent uploads see each other's choices. A value type: the gateway
/// keeps one behind a lock.
public struct Reservations: Sendable {
    private var bytes: [String: Int64] = [:]

    public init() {}

    public subscript(node: String) -> Int64 { bytes[node, default: 0] }

    public mutating func reserve(_ amount: Int64, on nodes: [String]) {
        for node in nodes { bytes[node, default: 0] += amount }
    }

    public mutating func release(_ amount: Int64, on nodes: [String]) {
        for node in nodes {
            let left = bytes[node, default: 0] - amount
            precondition(left >= 0, "released more than was reserved on \(node)")
            bytes[node] = left == 0 ? nil : left
        }
    }

    /// `nodes` with their reserved bytes filled in.
    public func applied(to nodes: [NodeLoad]) -> [NodeLoad] {
        nodes.map { node in
            var node = node
            node.reservedBytes = self[node.id]
            return node
        }
    }
}
