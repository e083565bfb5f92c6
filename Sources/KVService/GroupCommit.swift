import Foundation
import IProto
import KVReplication

/// Applies batches of records from many threads with as few SQLite commits
/// (fsyncs) as possible: a thread whose batch arrives while another commit is
/// under way waits, and the next commit takes every batch that queued up
/// meanwhile. Each caller returns once its own batch is durable, or throws
/// what went wrong with it; batches from different epochs go in separate
/// transactions, oldest first, so one stale batch fails alone.
final class GroupCommit: @unchecked Sendable {
    // @unchecked: every field is read and written under `condition`'s lock.
    private struct Pending {
        var id: Int
        var epoch: Epoch
        var records: [ReplicaRecord]
    }

    private let condition = NSCondition()
    private var pending: [Pending] = []
    private var results: [Int: IProtoError?] = [:]
    private var committing = false
    private var nextID = 0

    /// Returns once `records` are durable. `apply` makes one transaction of records
    /// durable; whichever caller commits runs its own, so every caller passes the same.
    func commit(
        _ records: [ReplicaRecord], epoch: Epoch, apply: ([ReplicaRecord], Epoch) throws(IProtoError) -> Void
    ) throws(IProtoError) {
        condition.lock()
        let id = nextID
        nextID += 1
        pending.append(Pending(id: id, epoch: epoch, records: records))
        while true {
            if let result = results.removeValue(forKey: id) {
                condition.unlock()
                if let error = result { throw error }
                return
            }
            if !committing {
                committing = true
                let taken = pending
                pending = []
                condition.unlock()
                let outcomes = commitTogether(taken, apply: apply)
                condition.lock()
                for (id, outcome) in outcomes { results[id] = outcome }
                committing = false
                condition.broadcast()
                continue
            }
            condition.wait()
        }
    }

    /// One transaction per epoch present, oldest first; each batch's outcome.
    private func commitTogether(
        _ batches: [Pending], apply: ([ReplicaRecord], Epoch) throws(IProtoError) -> Void
    ) -> [(Int, IProtoError?)] {
        var outcomes: [(Int, IProtoError?)] = []
        for epoch in Set(batches.map(\.epoch)).sorted() {
            let group = batches.filter { $0.epoch == epoch }
            var error: IProtoError?
            do {
                try apply(group.flatMap(\.records), epoch)
            } catch let failure {
                error = failure
            }
            outcomes += group.map { ($0.id, error) }
        }
        return outcomes
    }
}
