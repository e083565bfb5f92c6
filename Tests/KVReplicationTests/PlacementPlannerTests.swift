import KVReplication
import Testing

/// The leader's placement decisions, as pure steps over fixed inputs.
@Suite struct PlacementPlannerTests {
    private func inputs(
        members: [NodeID], alive: Set<NodeID>, gone: Set<NodeID> = [], repaired: [NodeID: Int] = [:]
    ) -> PlacementPlanner.Inputs {
        PlacementPlanner.Inputs(members: members, alive: alive, goneLongerThanGrace: gone, repairedThrough: repaired)
    }

    @Test func firstPlacementHoldsEveryMemberNotGone() throws {
        let (record, reason) = try #require(PlacementPlanner.next(after: nil, inputs(members: ["b", "a", "c"], alive: ["a"], gone: ["c"])))
        #expect(record == PlacementRecord(version: 1, nodes: ["a", "b"]))
        #expect(reason == "first placement: 2 nodes")
    }

    @Test func aLiveNewMemberJoinsAndTheOldSetIsKeptUntilSettled() throws {
        let current = PlacementRecord(version: 3, nodes: ["a", "b"])
        #expect(PlacementPlanner.next(after: current, inputs(members: ["a", "b", "c"], alive: ["a", "b"])) == nil, "not alive yet")
        let (record, reason) = try #require(PlacementPlanner.next(after: current, inputs(members: ["a", "b", "c"], alive: ["a", "b", "c"])))
        #expect(record == PlacementRecord(version: 4, nodes: ["a", "b", "c"], previous: [["a", "b"]]))
        #expect(reason == "c joins")
        #expect(record.readSets.map { $0.map(\.rawValue) } == [["a", "b", "c"], ["a", "b"]])
    }

    @Test func aNodeGoneLongerThanTheGraceLeavesButNeverTheLast() throws {
        let current = PlacementRecord(version: 1, nodes: ["a", "b", "c"])
        let (record, reason) = try #require(
            PlacementPlanner.next(after: current, inputs(members: ["a", "b", "c"], alive: ["a", "b"], gone: ["c"])))
        #expect(record == PlacementRecord(version: 2, nodes: ["a", "b"], previous: [["a", "b", "c"]]))
        #expect(reason == "c gone longer than the grace period")
        let alone = PlacementRecord(version: 5, nodes: ["a"])
        #expect(PlacementPlanner.next(after: alone, inputs(members: ["a"], alive: [], gone: ["a"])) == nil)
        // Back: it rejoins.
        let back = try #require(PlacementPlanner.next(after: record, inputs(members: ["a", "b", "c"], alive: ["a", "b", "c"])))
        #expect(back.record.nodes == ["a", "b", "c"] && back.record.version == 3 && back.record.previous.count == 2)
    }

    @Test func aReplacedMemberLeaves() throws {
        let current = PlacementRecord(version: 1, nodes: ["a", "b", "old"])
        let (record, reason) = try #require(PlacementPlanner.next(after: current, inputs(members: ["a", "b"], alive: ["a", "b"])))
        #expect(record.nodes == ["a", "b"] && reason == "old was replaced")
    }

    @Test func aChangeSettlesOnlyWhenEveryNodeIsAliveAndRepairedThroughIt() throws {
        let current = PlacementRecord(version: 4, nodes: ["a", "b", "c"], previous: [["a", "b"]])
        let all: Set<NodeID> = ["a", "b", "c"]
        #expect(PlacementPlanner.next(after: current, inputs(members: ["a", "b", "c"], alive: all, repaired: ["a": 4, "b": 4, "c": 3])) == nil)
        #expect(PlacementPlanner.next(after: current, inputs(members: ["a", "b", "c"], alive: ["a", "b"], repaired: ["a": 4, "b": 4, "c": 4])) == nil)
        let (record, reason) = try #require(
            PlacementPlanner.next(after: current, inputs(members: ["a", "b", "c"], alive: all, repaired: ["a": 4, "b": 5, "c": 4])))
        #expect(record == PlacementRecord(version: 4, nodes: ["a", "b", "c"]))
        #expect(reason == "placement 4 settled: every node repaired")
        #expect(PlacementPlanner.next(after: record, inputs(members: ["a", "b", "c"], alive: all, repaired: ["a": 4, "b": 4, "c": 4])) == nil)
    }

    /// While a change is unsettled, reads consult the old owners too.
    @Test func readSetsIncludeTheOwnersUnderEveryUnsettledPlacement() {
        let nodes = ["a", "b", "c", "d"].map { ClusterView.Node(id: NodeID($0), address: "\($0):1") }
        var view = ClusterView(nodes: nodes, alive: Set(nodes.map(\.id)), replicationFactor: 2)
        view.placement = PlacementRecord(version: 2, nodes: ["a", "b", "c", "d"], previous: [["a", "b", "c"]])
        var differs = 0
        for index in 0..<200 {
            let key = "key-\(index)"
            let sets = view.readSets(of: key)
            #expect(sets.count == 2)
            #expect(sets[0] == view.owners(of: key))
            #expect(sets[1].allSatisfy { $0.id != "d" })
            if sets[0] != sets[1] { differs += 1 }
        }
        #expect(differs > 50 && differs < 150, "about half the keys change owners when a 4th node joins rf 2: \(differs)")
    }
}
