import Metrics
import Synchronization

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
    /// Bytes cut from the end of the log: a torn or damaged tail.
    public var truncatedBytes = 0
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
public final class StorageJournal: Sendable {
    public let directory: String
    public let fsync: FsyncPolicy

    /// The log file being appended to, and the LSN of its first record.
    private struct Segment {
        var file: DurableFile
        var firstLSN: UInt64
    }

    /// Encoded changes not yet written.
    private let pending = Mutex<[UInt8]>([])
    private let segment: Mutex<Segment>
    /// The last LSN handed out, and the last one written (and synced, per policy).
    private let appended: Atomic<UInt64>
    private let synced: Atomic<UInt64>
    private let lastSnapshotLSN: Atomic<UInt64>
    private let records: Counter
    private let syncs: Counter
    private let snapshots: Counter

    /// The storage contents recovered from the directory: nil state when fresh.
    struct Contents {
        var state: StorageState?
        var slots: [[UInt8]]
    }

    private init(directory: String, fsync: FsyncPolicy, segment: sending Segment, lastLSN: UInt64, snapshotLSN: UInt64,
                 metricsPrefix: String) {
        self.directory = directory
        self.fsync = fsync
        self.segment = Mutex(segment)
        appended = Atomic(lastLSN)
        synced = Atomic(lastLSN)
        lastSnapshotLSN = Atomic(snapshotLSN)
        records = Counter(label: "\(metricsPrefix)_wal_records_total")
        syncs = Counter(label: "\(metricsPrefix)_wal_syncs_total")
        snapshots = Counter(label: "\(metricsPrefix)_snapshots_total")
    }

    /// Help text of the journal's metrics, by full name.
    static func metricHelp(prefix: String) -> [String: String] {
        [
            "\(prefix)_wal_records_total": "Changes appended to the write-ahead log.",
            "\(prefix)_wal_syncs_total": "fdatasync calls on the write-ahead log; records / syncs is the group-commit batch size.",
            "\(prefix)_snapshots_total": "Snapshots written.",
        ]
    }

    /// Changes since the last snapshot.
    public var changesSinceSnapshot: UInt64 {
        appended.load(ordering: .relaxed) - lastSnapshotLSN.load(ordering: .relaxed)
    }

    /// Bytes in the log segment being appended to.
    public var segmentBytes: Int { segment.withLock { $0.file.written } }

    // MARK: Recovery

    /// Opens `directory` (creating it if needed; its parent must exist), loads
    /// the snapshot, replays the log after it, and starts a new log segment.
    static func open(directory: String, fsync: FsyncPolicy, metricsPrefix: String)
        throws(JournalError) -> (journal: StorageJournal, contents: Contents, recovery: Recovery) {
        try DurableFile.makeDirectory(directory)
        try DurableFile.remove(path(directory, "snapshot.tmp"))  // a snapshot cut short; the old one stands
        var recovery = Recovery()
        var contents = Contents(state: nil, slots: Array(repeating: [], count: Storage.slotCount))

        let snapshotPath = path(directory, "snapshot")
        if let bytes = try DurableFile.read(snapshotPath) {
            switch JournalFormat.decodeSnapshot(bytes) {
            case .success(let snapshot):
                contents = Contents(state: snapshot.state, slots: snapshot.slots)
                recovery.snapshotLSN = snapshot.lsn
                recovery.lastLSN = snapshot.lsn
                recovery.fresh = false
            case .failure(let reason):
                throw JournalError("\(snapshotPath) is damaged (\(reason)); the changes it holds are in no log any more, so iprotod will not start without it: restore it from a backup, or move the directory away to start empty")
            }
        }

        let segments = try DurableFile.list(directory)
            .compactMap { name in JournalFormat.firstLSN(ofSegment: name).map { (name: name, firstLSN: $0) } }
            .sorted { $0.firstLSN < $1.firstLSN }
        for (position, segment) in segments.enumerated() {
            let segmentPath = path(directory, segment.name)
            let bytes = try DurableFile.read(segmentPath) ?? []
            let isLast = position == segments.count - 1
            let magic = JournalFormat.segmentMagic
            guard bytes.starts(with: magic) else {
                if isLast, bytes.count < magic.count, magic.starts(with: bytes) {
                    recovery.warnings.append("\(segmentPath) was created but its header never written; removed it")
                    try DurableFile.remove(segmentPath)
                    continue
                }
                throw JournalError("\(segmentPath) is not a log segment; move it out of the data directory")
            }
            guard segment.firstLSN <= recovery.lastLSN + 1 else {
                throw JournalError("the log has no changes \(recovery.lastLSN + 1)...\(segment.firstLSN - 1) (a segment before \(segment.name) is missing); iprotod will not start without them")
            }
            var offset = magic.count
            replay: while true {
                var problem: String
                switch JournalFormat.decodeRecord(bytes, at: offset) {
                case .end:
                    break replay
                case .record(let lsn, let record, let next):
                    if lsn <= recovery.snapshotLSN {  // already in the snapshot
                        offset = next
                        continue
                    }
                    if lsn == recovery.lastLSN + 1 {
                        apply(record, to: &contents)
                        recovery.lastLSN = lsn
                        recovery.recordsReplayed += 1
                        recovery.fresh = false
                        offset = next
                        continue
                    }
                    problem = "change \(lsn) where \(recovery.lastLSN + 1) was expected"
                case .invalid(let reason):
                    problem = reason
                }
                guard isLast else {
                    throw JournalError("\(segmentPath) holds \(problem) at byte \(offset), and later segments follow it; iprotod will not start on a damaged log: restore it from a backup")
                }
                recovery.truncatedBytes += bytes.count - offset
                recovery.warnings.append("\(segmentPath) ends with \(problem) at byte \(offset) (a write cut short by a crash, which was never acknowledged, or damage); truncated the log there, dropping \(bytes.count - offset) bytes")
                try DurableFile.truncate(segmentPath, to: offset)
                break replay
            }
        }

        let first = recovery.lastLSN + 1
        let file = try startSegment(directory: directory, firstLSN: first)
        let journal = StorageJournal(directory: directory, fsync: fsync, segment: Segment(file: file, firstLSN: first),
                                     lastLSN: recovery.lastLSN, snapshotLSN: recovery.snapshotLSN,
                                     metricsPrefix: metricsPrefix)
        return (journal, contents, recovery)
    }

    private static func apply(_ record: JournalRecord, to contents: inout Contents) {
        switch record {
        case .replace(let index, let value): contents.slots[index] = value
        case .state(let state): contents.state = state
        }
    }

    private static func startSegment(directory: String, firstLSN: UInt64) throws(JournalError) -> DurableFile {
        let file = try DurableFile.create(path(directory, JournalFormat.segmentName(firstLSN: firstLSN)))
        try file.write(JournalFormat.segmentMagic)
        try file.sync()
        try DurableFile.syncDirectory(directory)
        return file
    }

    private static func path(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    // MARK: Logging changes

    /// Appends `record` to the batch. The caller holds the storage's lock, so
    /// LSNs follow the order in which changes are applied.
    func append(_ record: JournalRecord) {
        pending.withLock { bytes in
            let lsn = appended.load(ordering: .relaxed) + 1
            JournalFormat.append(record, lsn: lsn, to: &bytes)
            appended.store(lsn, ordering: .releasing)
        }
        records.increment()
    }

    /// Writes every change appended so far and syncs it (unless the policy is
    /// `never`). Returns at once when another thread's sync already covered them.
    public func commit() {
        let target = appended.load(ordering: .acquiring)
        guard synced.load(ordering: .acquiring) < target else { return }
        segment.withLock { segment in
            guard synced.load(ordering: .acquiring) < target else { return }
            writePending(to: segment.file)
        }
    }

    /// Under the segment lock.
    private func writePending(to file: DurableFile) {
        var bytes: [UInt8] = []
        let upTo = pending.withLock { pending in
            swap(&bytes, &pending)
            return appended.load(ordering: .relaxed)
        }
        guard !bytes.isEmpty else { return }
        do {
            try file.write(bytes)
            if fsync != .never {
                try file.sync()
                syncs.increment()
            }
        } catch {
            // The changes are applied and replies acknowledging them are about to be
            // sent; they cannot be taken back, so the process stops before sending them.
            fatalError("write-ahead log: \(error); stopping so that no unsaved change is acknowledged")
        }
        synced.store(upTo, ordering: .releasing)
    }

    // MARK: Snapshots

    /// Writes out pending changes, moves on to a new log segment, and returns
    /// the LSN of the last change before it. Called under the storage's lock,
    /// with the contents the snapshot will hold.
    func beginSnapshot() throws(JournalError) -> UInt64 {
        try segment.withLock { segment throws(JournalError) in
            writePending(to: segment.file)
            let first = appended.load(ordering: .relaxed) + 1
            segment = Segment(file: try Self.startSegment(directory: directory, firstLSN: first), firstLSN: first)
            return first - 1
        }
    }

    /// Writes the snapshot of the contents up to `lsn` and deletes the log
    /// segments it makes unnecessary.
    func finishSnapshot(lsn: UInt64, state: StorageState, slots: [[UInt8]]) throws(JournalError) {
        let temporary = Self.path(directory, "snapshot.tmp")
        let file = try DurableFile.create(temporary)
        try file.write(JournalFormat.encodeSnapshot(lsn: lsn, state: state, slots: slots))
        try file.sync()
        try DurableFile.rename(temporary, to: Self.path(directory, "snapshot"))
        try DurableFile.syncDirectory(directory)
        lastSnapshotLSN.store(lsn, ordering: .relaxed)
        snapshots.increment()
        for name in try DurableFile.list(directory) {
            if let first = JournalFormat.firstLSN(ofSegment: name), first <= lsn {
                try DurableFile.remove(Self.path(directory, name))
            }
        }
        try DurableFile.syncDirectory(directory)
    }
}
