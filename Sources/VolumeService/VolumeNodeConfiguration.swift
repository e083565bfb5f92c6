import IProto

/// A file-store node's settings: `iproto-volumed`'s flags (docs/file-store.md, "Running a node").
public struct VolumeNodeConfiguration: Sendable {
    /// The node's directory: its id and its volumes (under `volumes/`).
    public var dataDirectory: String
    /// The most bytes its volumes may take; nil: the free space of its disk at start, plus what it holds.
    public var capacityBytes: Int?
    /// The gateway's base URL (http://HOST:PORT), to register at and keep registering at; nil: an admin registers the node.
    public var gatewayURL: String?
    /// The address the gateway reaches this node at; nil: where it listens.
    public var advertise: String?
    /// How often the node registers again (the gateway probes liveness itself).
    public var registrationInterval: Duration = .seconds(2)
    /// The largest chunk a VOL_PUT_CHUNK carries (the gateway sends 1 MiB shards); the largest request body is this plus 4 KiB.
    public var maxChunkBytes = 4 << 20
    /// Bytes after which a volume file stops taking writes and the next starts.
    public var volumeBytes = 1 << 30
    /// The share of a volume that must be garbage (deleted or replaced records) for
    /// compaction to rewrite it: of its records for a full volume, of `volumeBytes`
    /// for the one taking writes (so that a filling volume is not cut short again and again).
    public var compactionGarbageRatio = 0.3
    /// How often the node looks for volumes to compact; zero disables compaction.
    public var compactionInterval: Duration = .seconds(60)

    public static let maxChunkLimit = 16 << 20
    /// What a request carries besides its chunk: the frame's header and the other arguments.
    public static let requestOverhead = 4 << 10

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }

    public func validated() throws(StartFailure) -> VolumeNodeConfiguration {
        guard !dataDirectory.isEmpty else { throw .configuration("--data-dir is required") }
        guard (1...Self.maxChunkLimit).contains(maxChunkBytes) else {
            throw .configuration("--max-chunk \(maxChunkBytes) is out of range 1...\(Self.maxChunkLimit)")
        }
        if let capacityBytes, capacityBytes < 1 { throw .configuration("--capacity \(capacityBytes) must be positive") }
        guard volumeBytes >= 1 << 20 else { throw .configuration("--volume-size \(volumeBytes) is under 1 MiB") }
        guard compactionGarbageRatio > 0, compactionGarbageRatio <= 1 else {
            throw .configuration("--compact-garbage \(compactionGarbageRatio) must be in (0, 1]")
        }
        guard compactionInterval >= .zero else { throw .configuration("--compact-interval must not be negative") }
        guard registrationInterval > .zero else { throw .configuration("--registration-interval must be positive") }
        if let gatewayURL, !(gatewayURL.hasPrefix("http://") || gatewayURL.hasPrefix("https://")) {
            throw .configuration("--gateway \(gatewayURL) is not an http:// or https:// URL")
        }
        return self
    }
}
