import Durability
import Logging
import Metrics
import Synchronization

/// Why the data directory could not be read or written (the file layer's error, under the journal's name).
public typealias JournalError = FileSystemError

/// How hard the journal pushes a change to disk before the reply that acknowledges it.
public enum FsyncPolicy: String, CaseIterable, Sendable {
    /// One fdatasync per change, before its reply: the slowest, for tests of the disk.
    case always
    /// One fdatasync per batch of replies a worker sends (group commit): every
    /// acknowledged change is on disk, at a fraction of the syncs.
    case batch
    /// Written to the kernel before the reply, never synced: survives the
    /// process being killed, not the machine losing power.
    case never
}

/// What opening a data directory found and did.
public struct Recovery: Sendable {
    /// True when the directory held no storage yet.
    public var fresh = true
    /// The last change the snapshot holds (0: no snapshot).
    public var snapshotLSN: UInt64 = 0
    /// The last change recovered.
    public var lastLSN: UInt64 = 0
    /// Changes replayed from the log on top of the snapshot.
    public var recordsReplayed = 0
    /// Bytes cut from the end of the log: a torn tail, after which no valid change follows.
    public var truncatedBytes = 0
    /// With `forceRecovery`: where the damaged part of the directory was moved (nil when nothing was).
    public var movedAsideTo: String?
    /// Sentences an operator should read, such as what was truncated and why.
    public var warnings: [String] = []
}

/// The storage's write-ahead log and snapshots in one directory.
///
/// Changes are appended to an in-memory batch under the storage's lock, so
/// the log's order is the order they were applied in. ``commit()`` writes the
/// batch and syncs it (per ``FsyncPolicy``) before any reply that
/// acknowledges one of its changes is sent; workers that find their changes
/// already covered by another's sync skip it. A snapshot starts a new log
/// segment; the older ones are deleted once the snapshot is on disk.
///
/// When the disk refuses a write or a sync, the batch is not acknowledged:
/// the journal keeps the inverse of every change not yet durable, the
/// storage undoes them (``takeUndurable()``), and writes are refused for
/// ``retryInterval`` before one is let through to try again.
///
/// Locks, always taken in this order: `segment` (the file), the storage's
/// contents, `pending` (the batch).
public final class StorageJournal: Sendable {
    public let directory: String
    public let fsync: FsyncPolicy
    /// How long writes are refused after the disk failed one, before the next is tried.
    public static let retryInterval: Duration = .seconds(1)

    /// The log file being appended to.
    private struct Segment {
        var file: DurableFile
    }

    /// Changes appended but not yet written, and how to undo each.
    private struct Batch {
        var bytes: [UInt8] = []
        /// The inverse of each change, oldest first.
        var undo: [JournalRecord] = []
    }

    /// Why the disk failed, while writes are refused.
    private struct Failure {
        var error: JournalError
        /// The inverses of the changes the failed write carried, until the storage takes them.
        var undo: [JournalRecord]?
        var retryAt: ContinuousClock.Instant
        /// When the disk first refused, the failed retries since, and the last log line about them.
        var since: ContinuousClock.Instant
        var failedRetries = 0
        var loggedAt: ContinuousClock.Instant
    }
    /// A refusing disk is logged when it starts, then at most once per this while it lasts.
    private static let failureLogInterval: Duration = .seconds(60)

    private let pending = Mutex(Batch())
    private let segment: Mutex<Segment>
    /// The next segment, made by a snapshot before it takes the segment's lock to switch to it.
    private let prepared = Mutex<DurableFile?>(nil)
    /// The last LSN handed out, the last written to a file, and the last made
    /// durable per the policy (`never`: written).
    private let appended: Atomic<UInt64>
    private let written: Atomic<UInt64>
    private let synced: Atomic<UInt64>
    private let lastSnapshotLSN: Atomic<UInt64>
    /// Set while the disk refuses writes; `failures` counts every time it did, and every undo after.
    private let failure = Mutex<Failure?>(nil)
    private let failing = Atomic<Bool>(false)
    private let failures = Atomic<UInt64>(0)
    /// Per worker: `failures` as of its last barrier.
    private let failuresSeen = Mutex<[UInt64]>([])
    /// Why the disk refused the last write that it refused.
    private let lastError = Mutex<JournalError?>(nil)
    private let records: Counter
    private let syncs: Counter
    private let snapshots: Counter
    private let errors: Counter
    private let failingGauge: Gauge
    private let logger: Logger

    /// The storage contents recovered from the directory: nil state when fresh.
    struct Contents {
        var state: StorageState?
        var slots: [[UInt8]]
    }

    private init(directory: String, fsync: FsyncPolicy, segment: sending Segment, lastLSN: UInt64, snapshotLSN: UInt64,
                 metricsPrefix: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
        self.fsync = fsync
        self.segment = Mutex(segment)
        appended = Atomic(lastLSN)
        written = Atomic(lastLSN)
        synced = Atomic(lastLSN)
        lastSnapshotLSN = Atomic(snapshotLSN)
        records = Counter(label: "\(metricsPrefix)_wal_records_total")
        syncs = Counter(label: "\(metricsPrefix)_wal_syncs_total")
        snapshots = Counter(label: "\(metricsPrefix)_snapshots_total")
        errors = Counter(label: "\(metricsPrefix)_wal_errors_total")
        failingGauge = Gauge(label: "\(metricsPrefix)_storage_cannot_persist")
        failingGauge.record(0)
    }

    /// Help text of the journal's metrics, by full name.
    static func metricHelp(prefix: String) -> [String: String] {
        [
            "\(prefix)_wal_records_total": "Changes appended to the write-ahead log.",
            "\(prefix)_wal_syncs_total": "fdatasync calls on the write-ahead log; records / syncs is the group-commit batch size.",
            "\(prefix)_snapshots_total": "Snapshots written.",
            "\(prefix)_wal_errors_total": "Writes or syncs of the write-ahead log the disk refused (no space, I/O error); their changes were not acknowledged.",
            "\(prefix)_storage_cannot_persist": "1 while writes are refused because the disk refused the log's last write or sync.",
        ]
    }

    /// Changes since the last snapshot.
    public var changesSinceSnapshot: UInt64 {
        // An undo can take `appended` below a snapshot that a failed commit aborted late.
        let last = appended.load(ordering: .relaxed), snapshot = lastSnapshotLSN.load(ordering: .relaxed)
        return last > snapshot ? last - snapshot : 0
    }

    /// Bytes in the log segment being appended to.
    public var segmentBytes: Int { segment.withLock { $0.file.written } }

    // MARK: Recovery

    /// Opens `directory` (creating it if needed; its parent must exist), loads
    /// the snapshot and replays the log after it (``JournalRecovery``), and
    /// goes on appending to the last segment.
    static func open(directory: String, fsync: FsyncPolicy, forceRecovery: Bool, metricsPrefix: String, logger: Logger)
        throws(JournalError) -> (journal: StorageJournal, contents: Contents, recovery: Recovery) {
        let recovered = try JournalRecovery.run(directory: directory, forceRecovery: forceRecovery)
        let file: DurableFile
        if let last = recovered.lastSegment {
            file = try DurableFile.openForAppending(path(directory, last.name), length: last.length)
        } else {
            file = try prepareSegment(directory: directory)
            try file.rename(to: path(directory, JournalFormat.segmentName(firstLSN: recovered.recovery.lastLSN + 1)))
            try DurableFile.syncDirectory(directory)
        }
        let journal = StorageJournal(directory: directory, fsync: fsync, segment: Segment(file: file),
                                     lastLSN: recovered.recovery.lastLSN, snapshotLSN: recovered.recovery.snapshotLSN,
                                     metricsPrefix: metricsPrefix, logger: logger)
        return (journal, recovered.contents, recovered.recovery)
    }

    static func apply(_ record: JournalRecord, to contents: inout Contents) {
        switch record {
        case .replace(let index, let value): contents.slots[index] = value
        case .state(let state): contents.state = state
        }
    }

    /// A new segment under a temporary name, its header synced and its entry
    /// in the directory too: all a switch to it then needs is a rename.
    private static func prepareSegment(directory: String) throws(JournalError) -> DurableFile {
        let file = try DurableFile.create(path(directory, JournalFormat.preparedSegmentName))
        try file.write(JournalFormat.segmentMagic)
        try file.sync()
        try DurableFile.syncDirectory(directory)
        return file
    }

    static func path(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    // MARK: Logging changes

    /// Why writes are refused now, or nil when they may go ahead. The caller
    /// holds the storage's lock, so no change is appended after a failure
    /// until its undo has been taken.
    func refusal() -> JournalError? {
        guard failing.load(ordering: .acquiring) else { return nil }
        return failure.withLock { failure in
            guard let current = failure else { return nil }
            return current.undo != nil || ContinuousClock.now < current.retryAt ? current.error : nil
        }
    }

    /// Appends `record` to the batch, with `undo`, the change that reverts it.
    /// The caller holds the storage's lock, so LSNs follow the order in which
    /// changes are applied.
    func append(_ record: JournalRecord, undo: JournalRecord) {
        pending.withLock { batch in
            let lsn = appended.load(ordering: .relaxed) + 1
            JournalFormat.append(record, lsn: lsn, to: &batch.bytes)
            batch.undo.append(undo)
            appended.store(lsn, ordering: .releasing)
        }
        records.increment()
    }

    /// The outcome of a commit that the disk refused.
    struct CommitFailure: Error {
        var error: JournalError
        /// True for the caller that must undo the changes (``takeUndurable()``), exactly once per failure.
        var mustUndo: Bool
    }

    /// Writes every change appended so far and syncs it (unless the policy is
    /// `never`). Returns at once when another thread's sync already covered them.
    func commit() throws(CommitFailure) {
        let target = appended.load(ordering: .acquiring)
        guard synced.load(ordering: .acquiring) < target else { return }
        try segment.withLock { segment throws(CommitFailure) in
            guard synced.load(ordering: .acquiring) < target else { return }
            try writePending(to: segment.file, sync: fsync != .never)
        }
    }

    /// Under the segment lock. On failure the batch stays out of the file and
    /// the journal records the failure; the caller undoes the changes.
    private func writePending(to file: DurableFile, sync: Bool) throws(CommitFailure) {
        // Checked under the batch's lock, which takeUndurable holds while it takes both the
        // failed batch's undo and the pending batch: a batch that is about to be undone is
        // never written.
        var batch = Batch()
        let taken: Result<UInt64, JournalError> = pending.withLock { pending in
            if let refused = failure.withLock({ $0?.undo != nil ? $0!.error : nil }) { return .failure(refused) }
            swap(&batch, &pending)
            return .success(appended.load(ordering: .relaxed))
        }
        guard case .success(let upTo) = taken else {
            if case .failure(let refused) = taken { throw CommitFailure(error: refused, mustUndo: false) }
            return
        }
        let lengthBefore = file.written, writtenBefore = written.load(ordering: .relaxed)
        do {
            if !batch.bytes.isEmpty {
                try file.write(batch.bytes)
                written.store(upTo, ordering: .releasing)
            }
            if sync && synced.load(ordering: .relaxed) < upTo {
                try file.sync()
                syncs.increment()
            }
        } catch {
            // What the failed sync covered may or may not reach the disk: cut it off, so
            // that the file holds exactly the durable changes and a restart cannot revive
            // changes that were answered with an error. If even that fails, the file's
            // state is unknown, and writes stay refused until a restart recovers it.
            var retryAt = ContinuousClock.now + Self.retryInterval
            var reported = error
            if file.written > lengthBefore || file.tailUnknown {
                do {
                    try file.truncate(to: lengthBefore)
                    written.store(writtenBefore, ordering: .releasing)
                } catch let cut {
                    retryAt = .now + .seconds(Int64(Int32.max))
                    reported = JournalError("\(error.description); then \(cut.description), so writes stay refused until iprotod restarts", systemReason: error.systemReason)
                }
            }
            errors.increment()
            failingGauge.record(1)
            failing.store(true, ordering: .releasing)
            lastError.withLock { $0 = reported }
            failure.withLock { failure in
                let now = ContinuousClock.now
                if var ongoing = failure {
                    ongoing.error = reported
                    ongoing.undo = batch.undo
                    ongoing.retryAt = retryAt
                    ongoing.failedRetries += 1
                    if now - ongoing.loggedAt >= Self.failureLogInterval {
                        ongoing.loggedAt = now
                        logger.error("storage still cannot persist; writes are refused", metadata: [
                            "error": "\(reported)", "failed_retries": "\(ongoing.failedRetries)",
                            "for_seconds": "\(Int((now - ongoing.since) / .seconds(1)))",
                        ])
                    }
                    failure = ongoing
                } else {
                    logger.error("storage cannot persist; its writes were answered with an error, and writes are refused, retried every second", metadata: [
                        "error": "\(reported)", "data_dir": "\(directory)",
                    ])
                    failure = Failure(error: reported, undo: batch.undo, retryAt: retryAt, since: now, loggedAt: now)
                }
            }
            failures.add(1, ordering: .releasing)
            throw CommitFailure(error: reported, mustUndo: true)
        }
        synced.store(upTo, ordering: .releasing)
        if failing.load(ordering: .acquiring) && !batch.bytes.isEmpty {  // a retry got through
            failure.withLock { failure in
                if let ended = failure {
                    logger.notice("storage persists again; writes resumed", metadata: [
                        "failed_retries": "\(ended.failedRetries)",
                        "for_seconds": "\(Int((ContinuousClock.now - ended.since) / .seconds(1)))",
                    ])
                }
                failure = nil
            }
            failing.store(false, ordering: .releasing)
            failingGauge.record(0)
        }
    }

    /// After a failed commit: the inverses of every change that is not
    /// durable, newest first, and the log forgets those changes (the next LSN
    /// is the one after the last durable change). The caller holds the
    /// storage's lock and applies them.
    func takeUndurable() -> [JournalRecord] {
        let undo = pending.withLock { batch in
            let failed = failure.withLock { failure in
                defer { failure?.undo = nil }
                return failure?.undo ?? []
            }
            defer { batch = Batch() }
            let durable = written.load(ordering: .relaxed)
            appended.store(durable, ordering: .releasing)
            synced.store(durable, ordering: .releasing)
            return Array((failed + batch.undo).reversed())
        }
        // The undo is an event of its own: a barrier or snapshot that looked at the
        // contents between the failure and now must see that they changed since.
        failures.add(1, ordering: .releasing)
        return undo
    }

    /// Counts the disk's refusals and the undos that followed them (two events each):
    /// whoever read the contents, and sees it change before making its result
    /// durable, may have read a change that is undone now.
    var failureCount: UInt64 { failures.load(ordering: .acquiring) }

    /// Why the disk refused a write since `worker`'s last call, if it did: the
    /// replies the worker made meanwhile may show changes undone since.
    func failureSinceLastBarrier(worker: Int) -> JournalError? {
        let now = failures.load(ordering: .acquiring)
        guard now > 0 else { return nil }
        let changed = failuresSeen.withLock { seen in
            if seen.count <= worker { seen += Array(repeating: 0, count: worker + 1 - seen.count) }
            defer { seen[worker] = now }
            return seen[worker] != now
        }
        return changed ? lastError.withLock { $0 } : nil
    }

    // MARK: Snapshots

    /// Moves on to a new log segment and returns its first LSN: prepares and
    /// syncs the new file before taking any lock, then under the segment lock
    /// (writers' syncs wait; reads and new changes do not) writes and syncs
    /// whatever the old segment still lacks, whatever the policy, so that no
    /// segment but the last can ever have a torn tail, and renames the new
    /// file into place. A disk failure in the old segment is a commit failure.
    func switchSegment() throws(CommitFailure) -> UInt64 {
        do throws(JournalError) {
            try prepared.withLock { prepared throws(JournalError) in
                prepared = try Self.prepareSegment(directory: directory)
            }
        } catch {
            throw CommitFailure(error: error, mustUndo: false)
        }
        return try segment.withLock { segment throws(CommitFailure) in
            guard let next = prepared.withLock({ $0.take() }) else { preconditionFailure("no segment was prepared") }
            try writePending(to: segment.file, sync: true)
            if fsync == .never {  // writePending synced only what it wrote
                do throws(JournalError) { try segment.file.sync() } catch { throw CommitFailure(error: error, mustUndo: false) }
            }
            let first = written.load(ordering: .acquiring) + 1
            do throws(JournalError) {
                try next.rename(to: Self.path(directory, JournalFormat.segmentName(firstLSN: first)))
                try DurableFile.syncDirectory(directory)
            } catch {
                throw CommitFailure(error: error, mustUndo: false)
            }
            segment = Segment(file: next)
            return first
        }
    }

    /// The LSN of the last change appended; the caller holds the storage's
    /// lock, so it matches the contents it copies.
    var lastAppendedLSN: UInt64 { appended.load(ordering: .acquiring) }

    /// Writes the snapshot of the contents up to `lsn` and deletes the log
    /// segments before `firstKeptLSN`'s, which it makes unnecessary. No lock
    /// is held: the log still has every change until the rename.
    func writeSnapshot(lsn: UInt64, state: StorageState, slots: [[UInt8]], firstKeptLSN: UInt64) throws(JournalError) {
        let temporary = Self.path(directory, JournalFormat.temporarySnapshotName)
        let file = try DurableFile.create(temporary)
        try file.write(JournalFormat.encodeSnapshot(lsn: lsn, state: state, slots: slots))
        try file.sync()
        try DurableFile.rename(temporary, to: Self.path(directory, JournalFormat.snapshotName))
        try DurableFile.syncDirectory(directory)
        lastSnapshotLSN.store(lsn, ordering: .relaxed)
        snapshots.increment()
        for name in try DurableFile.list(directory) {
            if let first = JournalFormat.firstLSN(ofSegment: name), first < firstKeptLSN {
                try DurableFile.remove(Self.path(directory, name))
            }
        }
        try DurableFile.syncDirectory(directory)
    }
}
