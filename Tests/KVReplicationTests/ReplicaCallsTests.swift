import KVReplication
import Testing

@Suite struct ReplicaCallsTests {
    static func record(_ index: Int, valueBytes: Int) -> ReplicaRecord {
        ReplicaRecord(key: "00000000-0000-4000-8000-\(String(index + 100_000_000_000))", version: Version(rawValue: UInt64(index + 1)),
                      kind: .bin, value: [UInt8](repeating: 7, count: valueBytes))
    }

    @Test func everyRecordIsInExactlyOneRunInOrder() {
        let records = (0..<100).map { Self.record($0, valueBytes: ($0 * 7919) % 5000) }
        let runs = ReplicaRecord.calls(records, maxBytes: 20_000)
        #expect(runs.flatMap { Array($0) } == Array(records.indices))
        for run in runs {
            let bytes = records[run].map(\.messageBytes).reduce(0, +)
            #expect(run.count == 1 || bytes <= 20_000, "run \(run) carries \(bytes) bytes")
        }
        #expect(runs.count > 1)
    }

    @Test func smallBatchesStayOneCall() {
        let records = (0..<50).map { Self.record($0, valueBytes: 100) }
        #expect(ReplicaRecord.calls(records, maxBytes: 16 << 20) == [0..<50])
        #expect(ReplicaRecord.calls([], maxBytes: 16 << 20).isEmpty)
    }

    @Test func aRecordOverTheLimitTravelsAlone() {
        let records = [Self.record(0, valueBytes: 10), Self.record(1, valueBytes: 5000), Self.record(2, valueBytes: 10)]
        #expect(ReplicaRecord.calls(records, maxBytes: 1000) == [0..<1, 1..<2, 2..<3])
    }

    /// 100 one-MiB values, as 100 clients' concurrent SETs make one batch: each call
    /// stays within a 16 MiB budget, far below a replica's 64 MiB body limit.
    @Test func oneMebibyteValuesFitTheBudget() {
        let records = (0..<100).map { Self.record($0, valueBytes: 1 << 20) }
        let runs = ReplicaRecord.calls(records, maxBytes: 16 << 20)
        #expect(runs.count == 7)
        #expect(runs.allSatisfy { records[$0].map(\.messageBytes).reduce(0, +) <= 16 << 20 })
    }
}
