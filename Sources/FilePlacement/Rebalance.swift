/// One part on one node, as rebalancing sees it.
public struct PlacedPart: Hashable, Sendable {
    public var part: UInt64
    /// The file the part belongs to: no node may hold two parts of one file.
    public var file: UInt64
    public var bytes: Int64

    public init(part: UInt64, file: UInt64, bytes: Int64) {
        self.part = part
        self.file = file
        self.bytes = bytes
    }
}

/// Moving a part from the fullest node to the emptiest.
public struct PartMove: Hashable, Sendable {
    public var part: PlacedPart
    public var from: String
    public var to: String
}

extension FilePlacement {
    /// The next move of an online rebalance, or nil when `nodes` are within
    /// `target` (max fill ÷ min fill) or no move makes them more even.
    ///
    /// It takes a part from the fullest live node to the emptiest one that holds
    /// no part of the same file, the part whose size best halves the gap
    /// between them without passing it: after the move neither node is beyond
    /// the old extremes, so the spread never grows while parts move (the copy
    /// lands before the source is deleted, and the destination stays under the
    /// old maximum). Pure: `parts` lists each node's parts.
    public static func nextMove(nodes: [NodeLoad], parts: [String: [PlacedPart]], target: Double) -> PartMove? {
        let alive = nodes.filter { $0.alive && $0.capacityBytes > 0 }
        guard alive.count >= 2, spread(alive) > target else { return nil }
        let byFill = alive.sorted { $0.fill != $1.fill ? $0.fill > $1.fill : $0.id < $1.id }
        let source = byFill[0]
        let sourceParts = parts[source.id] ?? []
        // The emptiest destinations first; the first with a movable part wins.
        for destination in byFill.reversed() where destination.id != source.id {
            let filesThere = Set((parts[destination.id] ?? []).map(\.file))
            // Bytes that, moved, leave both nodes at the same fill.
            let capacities = Double(source.capacityBytes) + Double(destination.capacityBytes)
            let loadS = Double(source.usedBytes + source.reservedBytes), loadD = Double(destination.usedBytes + destination.reservedBytes)
            let even = (loadS * Double(destination.capacityBytes) - loadD * Double(source.capacityBytes)) / capacities
            guard even > 0 else { continue }
            var best: PlacedPart?
            for part in sourceParts where !filesThere.contains(part.file) && Double(part.bytes) < 2 * even {
                guard destination.hasRoom(for: part.bytes) else { continue }
                if best == nil || abs(Double(part.bytes) - even) < abs(Double(best!.bytes) - even)
                    || (abs(Double(part.bytes) - even) == abs(Double(best!.bytes) - even) && part.part < best!.part)
                {
                    best = part
                }
            }
            if let best, best.bytes > 0 { return PartMove(part: best, from: source.id, to: destination.id) }
        }
        return nil
    }
}
