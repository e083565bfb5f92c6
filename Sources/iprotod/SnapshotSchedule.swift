import Dispatch
import IProtoStorage
import Logging

/// Takes the storage's snapshots: every `interval` seconds when something
/// changed, sooner once the log passes `logBytes`, and a last one on stop.
/// A failed snapshot is logged and retried on the next tick; the log still
/// holds every change, so nothing is lost meanwhile.
final class SnapshotSchedule {
    private let storage: Storage
    private let journal: StorageJournal
    private let logger: Logger
    private let queue = DispatchQueue(label: "iprotod.snapshots")
    private let timer: any DispatchSourceTimer

    init(storage: Storage, journal: StorageJournal, interval: Double, logBytes: Int, logger: Logger) {
        self.storage = storage
        self.journal = journal
        self.logger = logger
        timer = DispatchSource.makeTimerSource(queue: queue)
        let tick = min(1.0, max(interval, 0.01))
        let ticksPerSnapshot = max(1, Int((interval / tick).rounded()))
        nonisolated(unsafe) var ticks = 0  // only the serial queue touches it
        timer.setEventHandler { [self] in
            ticks += 1
            let due = ticks >= ticksPerSnapshot || journal.segmentBytes >= logBytes
            guard due, journal.changesSinceSnapshot > 0 else { return }
            ticks = 0
            snapshot()
        }
        timer.schedule(deadline: .now() + tick, repeating: tick)
        timer.activate()
    }

    /// Stops the schedule and takes a last snapshot if anything changed since the previous one.
    func stopAndSnapshot() {
        queue.sync {
            timer.cancel()
            if journal.changesSinceSnapshot > 0 { snapshot() }
        }
    }

    private func snapshot() {
        do {
            try storage.snapshot()
            logger.debug("snapshot written", metadata: ["data_dir": "\(journal.directory)"])
        } catch {
            logger.error("snapshot failed; the log still holds every change", metadata: ["error": "\(error)"])
        }
    }
}
