import Durability
import IProto
import Logging
import Metrics
import Synchronization

/// The storage's availability, switched by the three ADM_STORAGE_SWITCH_* functions.
public enum StorageState: String, CaseIterable, Sendable {
    /// Reads succeed, writes fail with ``IProto/ReturnCode/storageReadOnly``.
    case readOnly = "read-only"
    /// Reads and writes succeed. The initial state unless configured otherwise.
    case readWrite = "read-write"
    /// Reads and writes fail with ``IProto/ReturnCode/storageMaintenance``.
    case maintenance

    /// The state as a metric label value.
    public var label: String { String(rawValue.map { $0 == "-" ? "_" : $0 }) }
}

extension ReturnCode {
    /// A write while the storage is read-only.
    public static let storageReadOnly = ReturnCode(rawValue: ReturnCode.firstServiceCode)
    /// A read or write while the storage is in maintenance.
    public static let storageMaintenance = ReturnCode(rawValue: ReturnCode.firstServiceCode + 1)
    /// A write the disk could not take (full, failing), or refused while it cannot;
    /// also every successful reply of a batch whose sync failed. Not acknowledged.
    public static let storageCannotPersist = ReturnCode(rawValue: ReturnCode.firstServiceCode + 2)

    /// The storage code's name as in docs/protocol.md; nil for other codes.
    public var storageName: String? {
        switch self {
        case .storageReadOnly: "storage_read_only"
        case .storageMaintenance: "storage_maintenance"
        case .storageCannotPersist: "storage_cannot_persist"
        default: nil
        }
    }
}

/// The assignment's storage: 1000 string slots of at most 256 bytes, initially
/// empty, behind a state. Safe to use from any thread.
///
/// One lock covers the state and the slots, so every operation is atomic with
/// respect to the others: a read never sees a torn value, and no write lands
/// after the switch to read-only that was acknowledged before it.
///
/// In memory only by default (the assignment's storage); opened on a data
/// directory, every change is journaled (``StorageJournal``) and survives
/// restarts and crashes once acknowledged.
public final class Storage: Sendable {
    // From storage.iproto-api, the one place that defines them.
    public static let indices = StorageLimits.replaceIndex
    public static let slotCount = indices.count
    public static let maxValueBytes = StorageLimits.replaceValueMaxBytes

    private struct Contents {
        var state: StorageState
        var slots: [[UInt8]]
    }

    private let contents: Mutex<Contents>
    private let stateGauges: [StorageState: Gauge]
    private let stateChanges: [StorageState: Counter]
    /// The write-ahead log and snapshots; nil when in memory only.
    public let journal: StorageJournal?
    /// What opening the data directory found; nil when in memory only.
    public let recovery: Recovery?
    /// Serializes snapshots.
    private let snapshotting = Mutex(())

    /// An in-memory storage. Metrics go to the swift-metrics backend:
    /// `PREFIX_storage_state{state}` (1 for the current state, 0 for the
    /// others) and `PREFIX_storage_state_changes_total{state}` (switches by
    /// target state).
    public convenience init(state: StorageState = .readWrite, metricsPrefix: String = "iproto") {
        self.init(contents: Contents(state: state, slots: Array(repeating: [], count: Self.slotCount)),
                  journal: nil, recovery: nil, metricsPrefix: metricsPrefix)
    }

    /// A storage kept in `dataDirectory` (created if missing; its parent must
    /// exist): the last snapshot and the log after it are loaded
    /// (``JournalRecovery``: a damaged log refuses to load unless
    /// `forceRecovery` moves the damaged part aside), and every change from
    /// now on is journaled with `fsync`. `initialState` applies only to a new
    /// directory; otherwise the last recorded state wins. ``recovery`` tells
    /// what was found; `logger` hears when the disk refuses writes and when it
    /// takes them again. Also exports `PREFIX_wal_records_total`,
    /// `PREFIX_wal_syncs_total`, `PREFIX_snapshots_total`,
    /// `PREFIX_wal_errors_total` and `PREFIX_storage_cannot_persist`.
    public convenience init(dataDirectory: String, fsync: FsyncPolicy, initialState: StorageState = .readWrite,
                            forceRecovery: Bool = false, metricsPrefix: String = "iproto",
                            logger: Logger = Logger(label: "iproto.storage")) throws(JournalError) {
        let (journal, recovered, recovery) = try StorageJournal.open(directory: dataDirectory, fsync: fsync,
                                                                    forceRecovery: forceRecovery,
                                                                    metricsPrefix: metricsPrefix, logger: logger)
        self.init(contents: Contents(state: recovered.state ?? initialState, slots: recovered.slots),
                  journal: journal, recovery: recovery, metricsPrefix: metricsPrefix)
        if recovered.state == nil {  // a new directory records its initial state first
            contents.withLock { journal.append(.state($0.state), undo: .state($0.state)) }
            do {
                try journal.commit()
            } catch {
                throw error.error
            }
        }
    }

    private init(contents: Contents, journal: StorageJournal?, recovery: Recovery?, metricsPrefix: String) {
        self.contents = Mutex(contents)
        self.journal = journal
        self.recovery = recovery
        let state = contents.state
        stateGauges = Dictionary(uniqueKeysWithValues: StorageState.allCases.map {
            ($0, Gauge(label: "\(metricsPrefix)_storage_state", dimensions: [("state", $0.label)]))
        })
        stateChanges = Dictionary(uniqueKeysWithValues: StorageState.allCases.map {
            ($0, Counter(label: "\(metricsPrefix)_storage_state_changes_total", dimensions: [("state", $0.label)]))
        })
        showState(state)
    }

    public var state: StorageState { contents.withLock { $0.state } }

    /// Switches the state; with a journal, throws ``IProto/ReturnCode/storageCannotPersist``
    /// while the disk refuses writes.
    public func switchState(to state: StorageState) throws(IProtoError) {
        try contents.withLock { contents throws(IProtoError) in
            if let refused = journal?.refusal() { throw Self.cannotPersist(refused) }
            journal?.append(.state(state), undo: .state(contents.state))
            contents.state = state
            showState(state)  // under the lock, so concurrent switches never show two states
        }
        try commitIfAlways()
        stateChanges[state]?.increment()
    }

    /// Help text of the storage's metrics, by full name.
    public static func metricHelp(prefix: String) -> [String: String] {
        [
            "\(prefix)_storage_state": "1 for the storage's current state, 0 for the others.",
            "\(prefix)_storage_state_changes_total": "Switches of the storage state, by target state.",
        ].merging(StorageJournal.metricHelp(prefix: prefix)) { first, _ in first }
    }

    private func showState(_ current: StorageState) {
        for (state, gauge) in stateGauges { gauge.record(state == current ? 1 : 0) }
    }

    /// The bytes stored at `index` (empty if never written).
    public func read(_ index: Int) throws(IProtoError) -> [UInt8] {
        try Self.check(index)
        return try contents.withLock { contents throws(IProtoError) in
            if contents.state == .maintenance { throw Self.maintenanceError }
            return contents.slots[index]
        }
    }

    /// Stores `value` at `index`.
    public func replace(_ index: Int, with value: [UInt8]) throws(IProtoError) {
        try Self.check(index)
        guard value.count <= Self.maxValueBytes else {
            throw .tooLong("value", length: value.count, limit: Self.maxValueBytes)
        }
        try contents.withLock { contents throws(IProtoError) in
            switch contents.state {
            case .readWrite:
                if let refused = journal?.refusal() { throw Self.cannotPersist(refused) }
                journal?.append(.replace(index: index, value: value), undo: .replace(index: index, value: contents.slots[index]))
                contents.slots[index] = value
            case .readOnly: throw IProtoError(.storageReadOnly, "storage is read-only")
            case .maintenance: throw Self.maintenanceError
            }
        }
        try commitIfAlways()
    }

    // MARK: Durability

    /// The reply barrier of worker `worker` (``Handlers/registerStorage(_:)``):
    /// makes every change so far durable per the journal's policy. Throws
    /// ``IProto/ReturnCode/storageCannotPersist`` when the disk refused it,
    /// after undoing every change that is not durable, and also when the disk
    /// refused another worker's sync since this worker's last barrier: its
    /// replies may show changes undone since.
    public func commit(worker: Int) throws(IProtoError) {
        guard let journal else { return }
        let failed = commitJournal()
        if let error = journal.failureSinceLastBarrier(worker: worker) ?? failed { throw Self.cannotPersist(error) }
    }

    /// Makes every change so far durable per the journal's policy, as ``commit(worker:)``
    /// does, for callers outside the server's workers.
    public func commit() throws(IProtoError) {
        if let error = commitJournal() { throw Self.cannotPersist(error) }
    }

    private func commitIfAlways() throws(IProtoError) {
        if journal?.fsync == .always { try commit() }
    }

    /// Commits the journal; on failure undoes the changes that are not durable, and returns why.
    private func commitJournal() -> JournalError? {
        do {
            try journal?.commit()
            return nil
        } catch {
            if error.mustUndo { undoUndurable() }
            return error.error
        }
    }

    /// Puts the contents back as the durable log has them.
    private func undoUndurable() {
        guard let journal else { return }
        contents.withLock { contents in
            for change in journal.takeUndurable() {
                switch change {
                case .replace(let index, let value): contents.slots[index] = value
                case .state(let state):
                    contents.state = state
                    showState(state)
                }
            }
        }
    }

    private static func cannotPersist(_ error: JournalError) -> IProtoError {
        let reason = error.systemReason.map { $0.prefix(1).lowercased() + $0.dropFirst() } ?? error.description
        return IProtoError(.storageCannotPersist, "storage cannot persist: \(reason)")
    }

    /// Writes a snapshot of the contents and drops the log it replaces;
    /// nothing to do when in memory only. The next log segment is prepared
    /// and synced first; the storage's lock is then held only while the
    /// contents are copied, and the log's only while the old segment's last
    /// changes are synced and the new one is renamed into place.
    public func snapshot() throws(JournalError) {
        guard let journal else { return }
        try snapshotting.withLock { _ throws(JournalError) in
            let firstKept: UInt64
            do throws(StorageJournal.CommitFailure) {
                firstKept = try journal.switchSegment()
            } catch {
                if error.mustUndo { undoUndurable() }
                throw error.error
            }
            let (lsn, failures, copy) = contents.withLock { (journal.lastAppendedLSN, journal.failureCount, $0) }
            // The snapshot must hold only durable changes: one undone later would come back with it,
            // and after an undo the LSNs it was copied at name other changes.
            if let error = commitJournal() { throw error }
            guard journal.failureCount == failures else {
                throw JournalError("the disk refused a write while the snapshot was taken; the next one will try again")
            }
            try journal.writeSnapshot(lsn: lsn, state: copy.state, slots: copy.slots, firstKeptLSN: firstKept)
        }
    }

    private static let maintenanceError = IProtoError(.storageMaintenance, "storage is in maintenance")

    private static func check(_ index: Int) throws(IProtoError) {
        guard indices.contains(index) else { throw .outOfRange("index", index, indices) }
    }
}
