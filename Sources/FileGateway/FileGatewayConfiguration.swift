import ErasureCoding
import IProto

/// The gateway's settings: `iproto-filegw`'s flags (docs/file-store.md, "Running the gateway").
public struct FileGatewayConfiguration: Sendable {
    /// Where the SQLite metadata lives (`metadata.sqlite`).
    public var dataDirectory: String
    /// Parity parts per file (0...4).
    public var parityParts = 1
    /// Each data part's share of a block; a block is 5 of these.
    public var shardBytes = StripeLayout.defaultShardBytes
    /// The largest file a PUT may store; a larger Content-Length is refused at once (413), a chunked body when it passes it.
    public var maxFileBytes: Int64 = 64 << 30
    /// Blocks of one upload or download on their way at once (each about 5 MiB plus parity).
    /// One: an upload still reads the next block from its client while one goes to the
    /// nodes; a second in flight measured no faster and 7-10 MiB larger (docs/file-store.md, "Memory").
    public var blocksInFlight = 1
    /// Bytes of blocks all transfers may hold at once; past it they wait their turn.
    public var transferMemoryBytes = 128 << 20
    /// How long a call to a node may take.
    public var callTimeout: Duration = .seconds(10)
    /// How often every node is probed (VOL_NODE_INFO), and how long without an answer makes it down.
    public var probeInterval: Duration = .seconds(1)
    public var livenessTimeout: Duration = .seconds(3)
    /// How often nodes and committed bytes are read again from the metadata (other gateways' changes).
    public var metadataRefreshInterval: Duration = .seconds(5)
    /// How often parts of deleted, replaced and abandoned files are deleted on their nodes.
    public var reclaimInterval: Duration = .seconds(2)
    /// How often every live node's parts are checked against the metadata and the orphans deleted; zero never.
    public var orphanSweepInterval: Duration = .seconds(3600)

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }

    public func validated() throws(StartFailure) -> FileGatewayConfiguration {
        guard !dataDirectory.isEmpty else { throw .configuration("--data-dir is required") }
        do { _ = try StripeLayout(parityParts: parityParts, shardBytes: shardBytes) } catch { throw .configuration("--parity \(parityParts): \(error)") }
        guard maxFileBytes >= 0 else { throw .configuration("--max-file-size must not be negative") }
        guard transferMemoryBytes >= 1 << 20 else { throw .configuration("--transfer-memory \(transferMemoryBytes) is under 1 MiB") }
        guard (1...16).contains(blocksInFlight) else { throw .configuration("--blocks-in-flight \(blocksInFlight) is out of range 1...16") }
        guard callTimeout > .zero, probeInterval > .zero, livenessTimeout > probeInterval, reclaimInterval > .zero, orphanSweepInterval >= .zero else {
            throw .configuration("timeouts and intervals must be positive, and --liveness-timeout longer than --probe-interval")
        }
        return self
    }
}
