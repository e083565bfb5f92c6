import Foundation

/// A stored file: its name, its layout, and where each part is.
public struct FileRecord: Equatable, Sendable {
    public var name: String
    /// Never reused, also for a name written again.
    public var fileID: UInt64
    public var size: Int64
    public var etag: String
    /// Seconds since 1970 of the commit.
    public var created: Double
    public var parityParts: Int
    public var shardBytes: Int
    /// Data parts first (0..<5), then parity, in part order.
    public var parts: [PartRecord]

    public init(name: String, fileID: UInt64, size: Int64, etag: String, created: Double, parityParts: Int, shardBytes: Int, parts: [PartRecord]) {
        self.name = name
        self.fileID = fileID
        self.size = size
        self.etag = etag
        self.created = created
        self.parityParts = parityParts
        self.shardBytes = shardBytes
        self.parts = parts
    }
}

/// One part of a file on one node.
public struct PartRecord: Equatable, Hashable, Sendable {
    public var partID: UInt64
    public var fileID: UInt64
    /// Its place in the file: 0..<5 data, then parity.
    public var index: Int
    public var node: String
    public var length: Int64

    public init(partID: UInt64, fileID: UInt64, index: Int, node: String, length: Int64) {
        self.partID = partID
        self.fileID = fileID
        self.index = index
        self.node = node
        self.length = length
    }
}

/// A part of an upload about to begin: its place in the file, its node, and the
/// length it is expected to reach (what its node reserves).
public struct PendingPart: Equatable, Sendable {
    public var index: Int
    public var node: String
    public var length: Int64

    public init(index: Int, node: String, length: Int64) {
        self.index = index
        self.node = node
        self.length = length
    }
}

extension PendingPart {
    /// How many ids an upload of `parts` takes from the id sequence: one per part, and
    /// one for the file when it is new (`fileID` nil).
    static func idCount(_ parts: [PendingPart], fileID: UInt64?) -> Int64 {
        Int64(parts.count + (fileID == nil ? 1 : 0))
    }

    /// The records of `parts` under the ids taken from the sequence from `first` on
    /// (``idCount(_:fileID:)`` of them): a new file's id first, then the parts' in order.
    static func records(_ parts: [PendingPart], fileID: UInt64?, first: Int64) -> [PartRecord] {
        let firstPart = UInt64(first) + (fileID == nil ? 1 : 0)
        let fileID = fileID ?? UInt64(first)
        return parts.enumerated().map { offset, part in
            PartRecord(partID: firstPart + UInt64(offset), fileID: fileID, index: part.index, node: part.node, length: part.length)
        }
    }
}

/// A storage node as the gateway records it: its id (from the node) and where it is.
public struct NodeRecord: Equatable, Sendable {
    public var id: String
    public var address: String
    /// Seconds since 1970 of its first registration.
    public var joined: Double

    public init(id: String, address: String, joined: Double) {
        self.id = id
        self.address = address
        self.joined = joined
    }
}

public struct MetadataError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The gateway's metadata: files, their parts, nodes, and the parts to reclaim.
/// SQLite by default (``SQLiteMetadataStore``); every implementation makes each
/// call atomic and durable before it returns.
///
/// The visibility rule: an upload's parts are recorded as **pending** before
/// the first byte is sent (``beginUpload(fileID:_:)``), so that a gateway that dies
/// mid-upload finds them at its next start and reclaims them; the file becomes
/// visible in one transaction (``commitUpload(_:)``) once every part is sealed on
/// its node, replacing any file of the same name, whose parts become garbage.
public protocol FileMetadataStore: Sendable {
    func nodes() async throws -> [NodeRecord]
    /// Records a node, or its new address.
    func saveNode(_ node: NodeRecord) async throws

    /// Records an upload's parts as pending, each under a fresh part id, for the file
    /// `fileID` or (nil: a new file) a fresh file id, in one transaction; returns their
    /// records, in the order given. File and part ids share one sequence and are never
    /// handed out again.
    func beginUpload(fileID: UInt64?, _ parts: [PendingPart]) async throws -> [PartRecord]
    /// Makes `file` visible under its name, atomically, its parts (pending, with the ids
    /// ``beginUpload(fileID:_:)`` gave; their lengths as finally written) live; returns the file it replaced, if any.
    func commitUpload(_ file: FileRecord) async throws -> FileRecord?
    /// Turns an abandoned upload's pending parts into garbage.
    func abortUpload(fileID: UInt64) async throws
    /// At start: every pending part (uploads a dead gateway left) becomes garbage; returns how many.
    func abandonPendingUploads() async throws -> Int

    func file(named name: String) async throws -> FileRecord?
    /// The live file with this id (its name may since hold a newer one), or nil.
    func file(id: UInt64) async throws -> FileRecord?
    /// Files whose names start with `prefix`, in name order after `after`, at most `limit`; without their parts.
    func files(prefix: String, after: String?, limit: Int) async throws -> [FileRecord]
    /// Deletes the file; its parts become garbage. Returns it, or nil when absent.
    func deleteFile(named name: String) async throws -> FileRecord?

    /// Parts to delete on their nodes (of deleted, replaced or abandoned files).
    func garbage(limit: Int) async throws -> [PartRecord]
    /// Forgets garbage parts once their nodes deleted them.
    func forgetGarbage(_ partIDs: [UInt64]) async throws

    /// Which of `partIDs` are recorded on `node`, in any state: the rest, if `node` holds
    /// them, are orphans (a part's row is written before its first chunk is sent, and
    /// removed only after its node deleted it), for the orphan sweep.
    func recordedParts(_ partIDs: [UInt64], on node: String) async throws -> Set<UInt64>

    /// Bytes of live (committed) parts per node.
    func liveBytesByNode() async throws -> [String: Int64]
    /// Live parts on `node`, in part id order after `after`, at most `limit`.
    func liveParts(on node: String, after: UInt64, limit: Int) async throws -> [PartRecord]
    /// Makes the pending copy `newPartID` (recorded by ``beginUpload(fileID:_:)``, complete on `node`)
    /// the file's part in place of `part`, which becomes garbage: atomic. False when
    /// `part` is no longer live (its file was deleted or replaced meanwhile).
    func movePart(_ part: PartRecord, to node: String, newPartID: UInt64) async throws -> Bool
    /// The numbers of files and live parts.
    func counts() async throws -> (files: Int, parts: Int)
}
