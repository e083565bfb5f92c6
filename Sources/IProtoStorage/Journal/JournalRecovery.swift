#if canImport(Glibc)
import Durability
import Glibc
#endif

/// Loading a data directory at start: the snapshot, then every log record
/// after it, in LSN order.
///
/// What a crash can leave is repaired: a record cut short (or a zeroed or
/// garbled tail) at the very end of the log, after which no valid record
/// follows, is truncated with a warning. Anything else is damage that lost
/// changes a client may have been told were saved — a bad record with valid
/// ones after it, a missing segment, a damaged snapshot — and the start is
/// refused with one line naming the file and the byte offset. With
/// `forceRecovery` the history is kept up to the first damage and everything
/// from there on is moved into `damaged-<unix time>/` in the directory,
/// never deleted, so that the server can start and an operator can still
/// examine or salvage it.
enum JournalRecovery {
    struct Outcome {
        var contents: StorageJournal.Contents
        var recovery: Recovery
        /// The segment to go on appending to, and its length once recovered; nil when there is none.
        var lastSegment: (name: String, length: Int)?
    }

    private static let forceHint = "restore the data directory from a backup, or start with --force-recovery to move the damaged part aside and lose the changes in it"

    static func run(directory: String, forceRecovery: Bool) throws(JournalError) -> Outcome {
        func path(_ name: String) -> String { StorageJournal.path(directory, name) }
        try DurableFile.makeDirectory(directory)
        // Leftovers of a snapshot or a segment switch cut short; what they were replacing stands.
        try DurableFile.remove(path(JournalFormat.temporarySnapshotName))
        try DurableFile.remove(path(JournalFormat.preparedSegmentName))
        var outcome = Outcome(contents: .init(state: nil, slots: Array(repeating: [], count: Storage.slotCount)),
                              recovery: Recovery(), lastSegment: nil)
        var aside = DamagedPart(directory: directory)

        let snapshotPath = path(JournalFormat.snapshotName)
        if let bytes = try DurableFile.read(snapshotPath) {
            switch JournalFormat.decodeSnapshot(bytes) {
            case .success(let snapshot):
                outcome.contents = .init(state: snapshot.state, slots: snapshot.slots)
                outcome.recovery.snapshotLSN = snapshot.lsn
                outcome.recovery.lastLSN = snapshot.lsn
                outcome.recovery.fresh = false
            case .failure(let reason):
                guard forceRecovery else {
                    throw JournalError("\(snapshotPath) is damaged (\(reason)); the changes it holds are in no log any more: \(forceHint)")
                }
                try aside.move(JournalFormat.snapshotName)
                outcome.recovery.warnings.append("\(snapshotPath) is damaged (\(reason)); moved it to \(aside.path)")
            }
        }

        let segments = try DurableFile.list(directory)
            .compactMap { name in JournalFormat.firstLSN(ofSegment: name).map { (name: name, firstLSN: $0) } }
            .sorted { $0.firstLSN < $1.firstLSN }
        /// Damage at `offset` of segment `position`: refused, or with force everything from there moved aside.
        func damaged(_ position: Int, at offset: Int, _ bytes: [UInt8], _ description: String) throws(JournalError) {
            let segment = segments[position]
            guard forceRecovery else { throw JournalError("\(description): \(forceHint)") }
            if offset == 0 {
                try aside.move(segment.name)
            } else {
                try aside.save(Array(bytes[offset...]), as: "\(segment.name).from-byte-\(offset)")
                try DurableFile.truncate(path(segment.name), to: offset)
                outcome.lastSegment = (segment.name, offset)
            }
            for later in segments[(position + 1)...] { try aside.move(later.name) }
            outcome.recovery.warnings.append("\(description); --force-recovery moved the log from there on to \(aside.path), and the changes in it are not loaded")
        }

        segmentLoop: for (position, segment) in segments.enumerated() {
            let segmentPath = path(segment.name)
            let bytes = try DurableFile.read(segmentPath) ?? []
            let isLast = position == segments.count - 1
            let magic = JournalFormat.segmentMagic
            guard bytes.starts(with: magic) else {
                if isLast, bytes.count < magic.count, magic.starts(with: bytes) {
                    outcome.recovery.warnings.append("\(segmentPath) was created but its header never written; removed it")
                    try DurableFile.remove(segmentPath)
                    continue
                }
                try damaged(position, at: 0, bytes, "\(segmentPath) is not a log segment (its first bytes are not \"IPWAL001\")")
                break
            }
            let expected = outcome.recovery.lastLSN + 1
            guard segment.firstLSN <= expected else {
                try damaged(position, at: 0, bytes, "the log has no changes \(expected)...\(segment.firstLSN - 1): a segment before \(segmentPath) is missing")
                break
            }
            var offset = magic.count
            while true {
                let problem: String
                switch JournalFormat.decodeRecord(bytes, at: offset) {
                case .end:
                    outcome.lastSegment = (segment.name, bytes.count)
                    continue segmentLoop
                case .record(let lsn, let record, let next):
                    if lsn <= outcome.recovery.snapshotLSN {  // already in the snapshot
                        offset = next
                        continue
                    }
                    if lsn == outcome.recovery.lastLSN + 1 {
                        StorageJournal.apply(record, to: &outcome.contents)
                        outcome.recovery.lastLSN = lsn
                        outcome.recovery.recordsReplayed += 1
                        outcome.recovery.fresh = false
                        offset = next
                        continue
                    }
                    // A whole, valid record out of order is no torn write: something wrote it.
                    try damaged(position, at: offset, bytes, "\(segmentPath) holds change \(lsn) at byte \(offset) where \(outcome.recovery.lastLSN + 1) was expected")
                    break segmentLoop
                case .invalid(let reason):
                    problem = reason
                }
                let wanted = outcome.recovery.lastLSN + 1
                if let later = JournalFormat.nextValidRecord(bytes, after: offset, minimumLSN: wanted) {
                    try damaged(position, at: offset, bytes, "\(segmentPath) is damaged at byte \(offset) (\(problem)), and valid change \(later.lsn) follows at byte \(later.offset)")
                    break segmentLoop
                }
                if !isLast {
                    try damaged(position, at: offset, bytes, "\(segmentPath) is damaged at byte \(offset) (\(problem)), and later segments follow it, from \(segments[position + 1].name)")
                    break segmentLoop
                }
                outcome.recovery.truncatedBytes += bytes.count - offset
                outcome.recovery.warnings.append("\(segmentPath) ends with \(problem) at byte \(offset), and no valid change follows: a write a crash cut short, which no reply acknowledged; truncated the log there, dropping \(bytes.count - offset) bytes")
                try DurableFile.truncate(segmentPath, to: offset)
                outcome.lastSegment = (segment.name, offset)
                break segmentLoop
            }
        }
        if forceRecovery, aside.created { try DurableFile.syncDirectory(directory) }
        outcome.recovery.movedAsideTo = aside.created ? aside.path : nil
        return outcome
    }
}

/// The folder `--force-recovery` moves damaged files into, made on first use.
private struct DamagedPart {
    let directory: String
    let path: String
    private(set) var created = false

    init(directory: String) {
        self.directory = directory
        path = StorageJournal.path(directory, "damaged-\(time(nil))")
    }

    private mutating func create() throws(JournalError) {
        guard !created else { return }
        try DurableFile.makeDirectory(path)
        created = true
    }

    /// Moves `name` from the data directory into this folder.
    mutating func move(_ name: String) throws(JournalError) {
        try create()
        try DurableFile.rename(StorageJournal.path(directory, name), to: StorageJournal.path(path, name))
        try DurableFile.syncDirectory(path)
    }

    /// Writes `bytes`, cut from a file kept in place, into this folder as `name`.
    mutating func save(_ bytes: [UInt8], as name: String) throws(JournalError) {
        try create()
        let file = try DurableFile.create(StorageJournal.path(path, name))
        try file.write(bytes)
        try file.sync()
        try DurableFile.syncDirectory(path)
    }
}
