import ArgumentParser
import CMalloc
import FileGateway
import FileMetadata
import Foundation
import Hummingbird
import HummingbirdCore
import IProto
import IProtoPrometheus
import Logging
import Metrics
import NIOCore
import Prometheus
import ServerSupport

#if canImport(Glibc)
import Glibc
#endif

struct IProtoFileGW: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iproto-filegw",
        abstract: "The file store's HTTP gateway: stripes each file into 5 data parts plus parity on the storage nodes and glues them back.",
        discussion: """
            Storage nodes (iproto-volumed) register themselves with --gateway URL, or an admin \
            registers one with POST /nodes {"address": "HOST:PORT"}. The HTTP API: PUT, GET \
            (Range), HEAD, DELETE /files/NAME; GET /files?prefix=; GET /nodes; GET /metrics; \
            GET / (a status page). docs/file-store.md has the design and the guarantees.

            The first line printed on standard output is "iproto-filegw listening on HOST:PORT" \
            (the port actually bound, useful with port 0). Logs go to standard error. SIGINT or \
            SIGTERM finishes the requests under way and exits 0.

            Exit status: 0 after a stop by signal; 64 for a bad flag; 65 when the metadata in \
            --data-dir cannot be opened; 69 when the address cannot be bound.
            """
    )

    private static let defaults = FileGatewayConfiguration(dataDirectory: "")

    @Option(help: "Address to listen on (HTTP), HOST:PORT; port 0 picks a free port.")
    var listen = "127.0.0.1:8080"

    @Option(help: "Directory of the metadata (metadata.sqlite); created if missing. Required unless --metadata names a PostgreSQL database.")
    var dataDir: String?

    @Option(help: "Where the metadata lives: sqlite (in --data-dir, the default) or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, which several gateways can share.")
    var metadata = "sqlite"

    @Option(help: "Parity parts per file (0...4): a file stays readable with this many of its nodes down. New files only; stored files keep theirs.")
    var parity = defaults.parityParts

    @Option(help: "The largest file a PUT may store (K, M, G, T suffixes); a larger one is refused with 413.")
    var maxFileSize = "64G"

    @Option(help: "Blocks (5 MiB each plus parity) of one upload or download on their way at once: the gateway's memory per transfer.")
    var blocksInFlight = defaults.blocksInFlight

    @Option(help: "Bytes of blocks all uploads and downloads may hold at once (K, M, G suffixes); past it transfers wait their turn (iproto_files_transfer_waits_total).")
    var transferMemory = "128M"

    @Option(help: "Seconds a call to a storage node may take.")
    var callTimeout = defaults.callTimeout / .seconds(1)

    @Option(help: "Seconds between probes of every storage node.")
    var probeInterval = defaults.probeInterval / .seconds(1)

    @Option(help: "Seconds a probe may go unanswered before its node counts as down (as does one that refuses a probe) until a probe succeeds; a down node takes no new parts and reads rebuild its parts from parity.")
    var livenessTimeout = defaults.livenessTimeout / .seconds(1)

    @Option(help: "Seconds between sweeps for orphaned parts (on a node, unknown to the metadata there; deleted); 0 disables. POST /admin/orphans sweeps at once.")
    var orphanSweepInterval = defaults.orphanSweepInterval / .seconds(1)

    @Option(help: "Seconds a client may send nothing while the gateway waits for it (between requests, or within a request); then its connection is closed and a stalled upload fails. 0 disables.")
    var idleTimeout = 30.0

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        _ = try parseListenAddress(listen)
        do { _ = try makeConfiguration().validated() } catch { throw ValidationError("\(error)") }
    }

    func run() async throws {
        // Blocks and chunks are a few MiB each and live briefly on many threads. Two
        // malloc arenas instead of glibc's 8 per core keep what freed blocks leave
        // behind to two pools that the next blocks reuse. (Mapping each large block
        // on its own, M_MMAP_THRESHOLD, kept the peak 15 MiB lower but halved PUT and
        // GET throughput: every block paid its page faults and zeroing again.)
        mallopt(M_ARENA_MAX, 2)
        ServerMain.bootstrapLogging(level: logLevel)
        var logger = Logger(label: "iproto-filegw")
        logger.logLevel = logLevel
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(
            DocumentedMetricsFactory(
                registry: registry, help: FileStore.metricHelp,
                durationBuckets: [
                    .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(2.5), .seconds(10),
                    .seconds(30), .seconds(120),
                ]))

        let configuration = try makeConfiguration()
        let store = try await FileStore(configuration: configuration, metadata: try await openMetadata(logger: logger), logger: logger)
        // What bursts of transfers freed goes back to the system once a second
        // (malloc_trim also releases free pages inside the arenas, not only at their tops).
        let trim = Task {
            while !Task.isCancelled {
                malloc_trim(0)
                try? await Task.sleep(for: .seconds(1))
            }
        }
        let loops = store.startLoops() + [trim]

        let (host, port) = try parseListenAddress(listen)
        let idle = try duration(idleTimeout, "--idle-timeout")
        let responder = GatewayResponder(store: store) { String(decoding: registry.emitToBuffer(), as: UTF8.self) }
        let app = Application(
            responder: responder,
            // The idle timeout is the gateway's own (ClientIdleTimeout), not Hummingbird's:
            // that one also cut off uploads the gateway itself was holding back.
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [ExpectContinueHandler()]
                        + (idle == .zero ? [] : [ClientIdleTimeout(timeout: .milliseconds(Int64(idle / .milliseconds(1))), closes: store.idleCloses)]),
                    idleTimeout: nil)),
            configuration: ApplicationConfiguration(address: .hostname(host, port: Int(port)), serverName: nil),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? Int(port)
                print("iproto-filegw listening on \(host.contains(":") ? "[\(host)]" : host):\(bound)")
                fflush(nil)
            },
            logger: logger
        )
        do {
            try await app.runService()
        } catch {
            for loop in loops { loop.cancel() }
            throw StartFailure.environment("cannot serve HTTP on \(listen): \(error)")
        }
        for loop in loops { loop.cancel() }
        logger.info("stopped")
    }

    private func openMetadata(logger: Logger) async throws -> any FileMetadataStore {
        if metadata == "sqlite" {
            do { return try SQLiteMetadataStore(directory: dataDir ?? "") } catch {
                throw StartFailure.data("cannot open the metadata in \(dataDir ?? ""): \(error)")
            }
        }
        do { return try await PostgresMetadataStore(url: metadata, logger: logger) } catch {
            throw StartFailure.data("cannot use the metadata at \(metadata): \(String(reflecting: error))")
        }
    }

    private func makeConfiguration() throws -> FileGatewayConfiguration {
        if metadata == "sqlite", dataDir == nil { throw ValidationError("--data-dir is required with SQLite metadata") }
        if metadata != "sqlite", !(metadata.hasPrefix("postgres://") || metadata.hasPrefix("postgresql://")) {
            throw ValidationError("--metadata must be sqlite or a postgres:// URL, got \"\(metadata)\"")
        }
        var configuration = FileGatewayConfiguration(dataDirectory: dataDir ?? "(postgres)")
        configuration.parityParts = parity
        configuration.maxFileBytes = Int64(try parseByteSize(maxFileSize, flag: "--max-file-size"))
        configuration.blocksInFlight = blocksInFlight
        configuration.transferMemoryBytes = try parseByteSize(transferMemory, flag: "--transfer-memory")
        configuration.callTimeout = try duration(callTimeout, "--call-timeout")
        configuration.probeInterval = try duration(probeInterval, "--probe-interval")
        configuration.livenessTimeout = try duration(livenessTimeout, "--liveness-timeout")
        configuration.orphanSweepInterval = try duration(orphanSweepInterval, "--orphan-sweep-interval")
        return configuration
    }
}

