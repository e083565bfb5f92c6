import ArgumentParser
import Dispatch
import IProto
import IProtoPrometheus
import KVService
import Logging
import Metrics
import Prometheus
import ServerSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct IProtoKVD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iproto-kvd",
        abstract: "A node of the replicated key-value cluster: iproto on the wire, etcd for membership and leader election.",
        discussion: """
            Start the first node with --etcd URL,…; start every other with --join HOST:PORT \
            of any running node (it learns etcd's endpoints and the cluster's settings there). \
            A restarted node finds both in its --data-dir. docs/cluster.md has the design and \
            the guarantees.

            The first line printed on standard output is "iproto-kvd listening on HOST:PORT" \
            (the port actually bound, useful with port 0); with metrics enabled the second is \
            "iproto-kvd metrics on HOST:PORT". Logs go to standard error. SIGINT or SIGTERM \
            resigns leadership (the next leader is elected at once), answers what was received \
            and exits 0.

            Exit status: 0 after a stop by signal; 64 for a bad flag, or a --replication-factor \
            that differs from the cluster's (restarting cannot help); 65 when --data-dir cannot \
            be used; 69 when etcd or the --join node cannot be reached, which a restart may fix.
            """
    )

    private static let defaults = KVNodeConfiguration(dataDirectory: "")

    @Option(help: "Address to listen on, HOST:PORT; port 0 picks a free port.")
    var listen = "127.0.0.1:4001"

    @Option(help: "Address other nodes and clients reach this node at; default: the address it listens on.")
    var advertise: String?

    @Option(help: "Directory of this node's data (SQLite store, node id, cluster settings); created if missing.")
    var dataDir: String

    @Option(help: "Copies of every key; must equal the cluster's (set by its first node).")
    var replicationFactor = defaults.replicationFactor

    @Option(help: "etcd client URLs, comma-separated (the first node; others learn them through --join).")
    var etcd: String?

    @Option(help: "Any running node, HOST:PORT, to learn the cluster from.")
    var join: String?

    @Option(help: "The cluster's name (its keys in etcd live under /iproto-kv/NAME/).")
    var cluster = defaults.cluster

    @Option(help: "Seconds of the leader's etcd lease: a dead leader is replaced about this long after its last renewal.")
    var leaseTtl = defaults.leaseTTL

    @Option(help: "Largest value a SET accepts, in bytes (at most 8 MiB).")
    var maxValue = defaults.maxValueBytes

    @Option(help: "Largest request body a node accepts, from clients and peers (a larger one is refused with body_too_large and the connection closed); also the largest reply it takes from a peer.")
    var maxBody = defaults.maxBodyBytes

    @Option(help: "Most record bytes in one call to a replica (writes and repair fetches); a batch of large values takes as many calls as it needs (at least --max-value + 1024, at most half of --max-body).")
    var peerCallBytes = defaults.peerCallBytes

    @Option(help: "Seconds between heartbeats to the other nodes.")
    var heartbeatInterval = defaults.heartbeatInterval / .seconds(1)

    @Option(help: "Seconds without an answered heartbeat after which a node counts as down.")
    var livenessTimeout = defaults.livenessTimeout / .seconds(1)

    @Option(help: "Seconds to wait for another node's answer.")
    var peerTimeout = defaults.peerTimeout / .seconds(1)

    @Option(help: "Seconds between background repair rounds (copying missed records from peers).")
    var repairInterval = defaults.repairInterval / .seconds(1)

    @Option(help: "Seconds a node may stay silent before it leaves the placement and its keys are copied to the nodes that now own them.")
    var deadNodeGrace = defaults.deadNodeGrace / .seconds(1)

    @Option(help: "Bytes of keys and values the leader keeps in memory for keys it wrote or read in its term; over it, it forgets entries (iproto_kv_leader_cache_evictions_total) and reads them from the replicas again. 0: no cache.")
    var leaderCache = defaults.leaderCacheBytes

    @Option(help: "Worker threads, each with its own event loop. A worker waits while the leader replicates its batch of writes, and the next batch takes every write that arrived meanwhile: one worker makes the largest batches, the fewest fsyncs and replica calls per write (see docs/benchmarks.md); more suit read-heavy loads on many cores.")
    var workers = 1

    @Option(help: "Open client connections across all workers.")
    var maxConnections = 4096

    @Option(help: "Sustained requests per second per connection; faster requests get return code 7; 0 disables (the default: nodes call each other at high rates).")
    var rateLimit = 0.0

    @Option(help: "Requests a connection may send at once beyond the sustained rate.")
    var rateBurst = 1000

    @Option(help: "Seconds a connection may stay silent in both directions; 0 disables.")
    var idleTimeout = 60.0

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
        let logger = Logger(label: "iproto-kvd")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(Self.metricsFactory(registry))

        let serverConfiguration = try makeServerConfiguration()
        let nodeConfiguration = try makeNodeConfiguration()
        let node = try BlockingTask.run { () async throws(StartFailure) -> KVNode in try await KVNode.open(configuration: nodeConfiguration, logger: logger) }
        let server: Server
        do {
            server = try Server(configuration: serverConfiguration, handlers: node.handlers(workers: serverConfiguration.workers), logger: logger)
        } catch {
            throw StartFailure.environment("\(error)")
        }
        let metrics = try ServerMain.startMetricsEndpoint(listen: metricsListen, prefix: "iproto_kv", registry: registry, logger: logger) {
            server.publishMetrics()
        }
        try ServerMain.requireReachable(listen: listen, host: serverConfiguration.host, advertise: advertise, reader: "the other nodes")
        try BlockingTask.run { () async throws(StartFailure) in try await node.start(listeningOn: server.address) }
        do {
            try server.start()
        } catch {
            throw StartFailure.environment("\(error)")
        }
        print("iproto-kvd listening on \(server.address)")
        if let metrics { print("iproto-kvd metrics on \(metrics.address)") }
        fflush(nil)

        let signal = stopSignals.wait()
        logger.info("stopping", metadata: ["signal": "\(signal)"])
        BlockingTask.run { () async throws(Never) in await node.stop() }
        server.shutdown()
        server.wait()
        logger.info("stopped")
    }

    private func makeNodeConfiguration() throws -> KVNodeConfiguration {
        var configuration = KVNodeConfiguration(dataDirectory: dataDir)
        configuration.replicationFactor = replicationFactor
        configuration.etcdEndpoints = etcd.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        configuration.join = join
        configuration.cluster = cluster
        configuration.advertise = advertise
        configuration.leaseTTL = leaseTtl
        configuration.maxValueBytes = maxValue
        configuration.peerCallBytes = peerCallBytes
        configuration.maxBodyBytes = maxBody
        configuration.heartbeatInterval = try duration(heartbeatInterval, "--heartbeat-interval")
        configuration.livenessTimeout = try duration(livenessTimeout, "--liveness-timeout")
        configuration.peerTimeout = try duration(peerTimeout, "--peer-timeout")
        configuration.repairInterval = try duration(repairInterval, "--repair-interval")
        configuration.leaderCacheBytes = leaderCache
        configuration.deadNodeGrace = try duration(deadNodeGrace, "--dead-node-grace")
        if let join { _ = try parseListenAddress(join, flag: "--join") }
        if let advertise { _ = try parseListenAddress(advertise, flag: "--advertise") }
        return configuration
    }

    private func makeServerConfiguration() throws -> Configuration {
        let (host, port) = try parseListenAddress(listen)
        var configuration = Configuration(host: host, port: port)
        configuration.workers = workers
        // Replica calls carry many values, up to --peer-call-bytes each (at most half of this).
        configuration.maxBodyBytes = maxBody
        configuration.maxOutputBytes = maxBody
        configuration.maxConnections = maxConnections
        configuration.maxConnectionsPerIP = 0
        configuration.rateLimit = rateLimit
        configuration.rateBurst = rateBurst
        configuration.rateLimitPerIP = 0
        configuration.adminFrom = []
        configuration.metricsPrefix = "iproto_kv"
        configuration.idleTimeout = try duration(idleTimeout, "--idle-timeout")
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.message)
        }
        return configuration
    }

    private static func metricsFactory(_ registry: PrometheusCollectorRegistry) -> DocumentedMetricsFactory {
        let help = Server.metricHelp(prefix: "iproto_kv").merging(KVNode.metricHelp) { first, _ in first }
        return DocumentedMetricsFactory(
            registry: registry, help: help,
            durationBuckets: [
                .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
                .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100), .milliseconds(250), .seconds(1),
            ])
    }
}

