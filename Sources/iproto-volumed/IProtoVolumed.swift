import ArgumentParser
import IProto
import IProtoPrometheus
import Logging
import Metrics
import Prometheus
import ServerSupport
import VolumeService

#if canImport(Glibc)
import Glibc
#endif

struct IProtoVolumed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iproto-volumed",
        abstract: "A storage node of the file store: keeps file parts in checksummed, append-only volumes and serves them over iproto.",
        discussion: """
            Start it with --gateway URL of the file store's gateway: it registers there at \
            start and again every --registration-interval, and the gateway places parts on it \
            from then on (a node is never removed). Without --gateway an admin registers it \
            (POST /nodes on the gateway, or iproto files add-node). docs/file-store.md has the \
            design; the node's API is in its "Node API" section.

            The first line printed on standard output is "iproto-volumed listening on HOST:PORT" \
            (the port actually bound, useful with port 0); with metrics enabled the second is \
            "iproto-volumed metrics on HOST:PORT". Logs go to standard error. SIGINT or SIGTERM \
            answers what was received and exits 0.

            Exit status: 0 after a stop by signal; 64 for a bad flag; 65 when --data-dir cannot \
            be used; 69 when the address cannot be bound.
            """
    )

    private static let defaults = VolumeNodeConfiguration(dataDirectory: "")

    @Option(help: "Address to listen on (iproto), HOST:PORT; port 0 picks a free port.")
    var listen = "127.0.0.1:4101"

    @Option(help: "Address the gateway reaches this node at; default: the address it listens on.")
    var advertise: String?

    @Option(help: "Directory of this node's id and volumes; created if missing.")
    var dataDir: String

    @Option(help: "The most bytes the node's volumes may take (K, M, G, T suffixes: powers of 1024); default: the free space of its disk at start plus what it holds. A chunk past it is refused with vol_full.")
    var capacity: String?

    @Option(help: "The gateway's URL (http://HOST:PORT) to register at; none: an admin registers the node.")
    var gateway: String?

    @Option(help: "Seconds between registrations at the gateway.")
    var registrationInterval = defaults.registrationInterval / .seconds(1)

    @Option(help: "The largest chunk a VOL_PUT_CHUNK may carry (K, M suffixes); the largest request body is this plus 4 KiB, and a larger one is refused with body_too_large and the connection closed.")
    var maxChunk = "4M"

    @Option(help: "Bytes after which a volume file stops taking writes and the next one starts (K, M, G suffixes).")
    var volumeSize = "1G"

    @Option(help: "Share of a volume that must be garbage (records of deleted parts, replaced chunks) before compaction rewrites it without them: of its records for a full volume, of --volume-size for the one taking writes.")
    var compactGarbage = defaults.compactionGarbageRatio

    @Option(help: "Seconds between looks for volumes to compact; 0 disables compaction.")
    var compactInterval = defaults.compactionInterval / .seconds(1)

    @Option(help: "Worker threads, each with its own event loop; each worker's batch of writes shares one fsync.")
    var workers = 2

    @Option(help: "Open connections across all workers.")
    var maxConnections = 1024

    @Option(help: "Bytes of stashed input and unsent output across all connections; past it the node stops reading from the connections holding the most until their clients read (K, M, G suffixes; 0 disables).")
    var memoryBudget = "256M"

    @Option(help: "Seconds a connection may stay silent in both directions; 0 disables.")
    var idleTimeout = 60.0

    @Option(help: "Seconds a request may take to arrive once its first byte has (slow senders are cut off); 0 disables.")
    var readTimeout = 10.0

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Address of the Prometheus endpoint (GET /metrics), HOST:PORT; empty disables.")
    var metricsListen = ""

    func validate() throws {
        _ = try makeServerConfiguration()
        do { _ = try makeNodeConfiguration().validated() } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        let stopSignals = SignalSet([SIGINT, SIGTERM])
        stopSignals.block()
        ServerMain.bootstrapLogging(level: logLevel)
        let logger = Logger(label: "iproto-volumed")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(Self.metricsFactory(registry))

        let serverConfiguration = try makeServerConfiguration()
        let node = try VolumeNode(configuration: try makeNodeConfiguration(), workers: serverConfiguration.workers, logger: logger)
        let server: Server
        do {
            server = try Server(configuration: serverConfiguration, handlers: node.handlers(), logger: logger)
        } catch {
            throw StartFailure.environment("\(error)")
        }
        let metrics = try ServerMain.startMetricsEndpoint(listen: metricsListen, prefix: "iproto_vol", registry: registry, logger: logger) {
            server.publishMetrics()
        }
        if gateway != nil {
            try ServerMain.requireReachable(listen: listen, host: serverConfiguration.host, advertise: advertise, reader: "the gateway")
        }
        do {
            try server.start()
        } catch {
            throw StartFailure.environment("\(error)")
        }
        node.start(listeningOn: server.address)
        logger.info("serving", metadata: ["node": "\(node.id)", "capacity_bytes": "\(node.capacityBytes)", "data_dir": "\(dataDir)"])
        print("iproto-volumed listening on \(server.address)")
        if let metrics { print("iproto-volumed metrics on \(metrics.address)") }
        fflush(nil)

        let signal = stopSignals.wait()
        logger.info("stopping", metadata: ["signal": "\(signal)"])
        BlockingTask.run { () async throws(Never) in await node.stop() }
        server.shutdown()
        server.wait()
        logger.info("stopped")
    }

    private func makeNodeConfiguration() throws -> VolumeNodeConfiguration {
        var configuration = VolumeNodeConfiguration(dataDirectory: dataDir)
        configuration.capacityBytes = try capacity.map { try parseByteSize($0, flag: "--capacity") }
        configuration.gatewayURL = gateway
        configuration.advertise = advertise
        configuration.registrationInterval = try duration(registrationInterval, "--registration-interval")
        configuration.maxChunkBytes = try parseByteSize(maxChunk, flag: "--max-chunk")
        configuration.volumeBytes = try parseByteSize(volumeSize, flag: "--volume-size")
        configuration.compactionGarbageRatio = compactGarbage
        configuration.compactionInterval = try duration(compactInterval, "--compact-interval")
        if let advertise { _ = try parseListenAddress(advertise, flag: "--advertise") }
        return configuration
    }

    private func makeServerConfiguration() throws -> Configuration {
        let (host, port) = try parseListenAddress(listen)
        let maxChunkBytes = try parseByteSize(maxChunk, flag: "--max-chunk")
        var configuration = Configuration(host: host, port: port)
        configuration.workers = workers
        configuration.maxBodyBytes = min(maxChunkBytes, VolumeNodeConfiguration.maxChunkLimit) + VolumeNodeConfiguration.requestOverhead
        // A few chunk replies queued for a gateway that reads them slowly.
        configuration.maxOutputBytes = 4 * configuration.maxBodyBytes
        configuration.maxConnections = maxConnections
        // The gateway opens many connections from one address, at a high rate.
        configuration.maxConnectionsPerIP = 0
        configuration.rateLimit = 0
        configuration.rateLimitPerIP = 0
        configuration.adminFrom = []
        configuration.metricsPrefix = "iproto_vol"
        configuration.memoryBudgetBytes = try parseByteSize(memoryBudget, flag: "--memory-budget")
        configuration.idleTimeout = try duration(idleTimeout, "--idle-timeout")
        configuration.readTimeout = try duration(readTimeout, "--read-timeout")
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.message)
        }
        return configuration
    }

    private static func metricsFactory(_ registry: PrometheusCollectorRegistry) -> DocumentedMetricsFactory {
        let help = Server.metricHelp(prefix: "iproto_vol").merging(VolumeNode.metricHelp) { first, _ in first }
        return DocumentedMetricsFactory(
            registry: registry, help: help,
            durationBuckets: [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
            ])
    }
}

