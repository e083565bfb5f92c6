import ArgumentParser
import ServerSupport
import IProto
import IProtoPrometheus
import IProtoStorage
import Logging
import Metrics
import Prometheus

#if canImport(Glibc)
import Glibc
#endif

struct IProtoD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iprotod",
        abstract: "Serve the iproto storage API (1000 string slots with read-only, read-write and maintenance states).",
        discussion: """
            The first line printed on standard output is "iprotod listening on HOST:PORT", \
            with the port actually bound (useful with port 0); with metrics enabled the second \
            is "iprotod metrics on HOST:PORT". Logs go to standard error. SIGINT or SIGTERM \
            stops accepting, answers what was received, flushes and exits 0.

            Every option can also be set in the environment as IPROTOD_<OPTION> \
            (e.g. IPROTOD_MAX_BODY=1024); the command line wins. LOG_LEVEL is read too. \
            Under systemd socket activation (LISTEN_FDS) the passed socket is served \
            instead of --listen.

            Exit status: 0 after a stop by signal; 64 for a bad flag or value (restarting \
            cannot help); 65 when --data-dir holds damaged data that iprotod will not load \
            (an operator must restore it or use --force-recovery); 69 when the environment \
            fails the start (address in use, data directory unusable, disk full), which a \
            restart may fix.
            """
    )

    private static let defaults = Configuration()
    private static let metricsPrefix = "iprotod"

    @Option(help: "Address to listen on, HOST:PORT ([V6]:PORT for IPv6); port 0 picks a free port.")
    var listen = "\(defaults.host):\(defaults.port)"

    @Option(help: "Worker threads, each with its own event loop; the default is min(4, cores).")
    var workers = defaults.workers

    @Option(help: "Largest accepted body_length in bytes; larger requests get an error and the connection is closed.")
    var maxBody = defaults.maxBodyBytes

    @Option(help: "Unsent output per connection, in bytes, past which reading from it pauses.")
    var maxOutput = defaults.maxOutputBytes

    @Option(help: "Bytes of stashed input and unsent output across all connections past which reading stops on the connections holding the most; 0 disables.")
    var memoryBudget = defaults.memoryBudgetBytes

    @Option(help: "Open connections across all workers; past it new connections are closed at once.")
    var maxConnections = defaults.maxConnections

    @Option(help: "Open connections from one client address (IPv6: one --ipv6-prefix-length prefix); past it new ones are closed at once; 0 disables.")
    var maxConnectionsPerIp = defaults.maxConnectionsPerIP

    @Option(help: "Sustained requests per second per connection; faster requests get return code 7; 0 disables.")
    var rateLimit = defaults.rateLimit

    @Option(help: "Requests a connection may send at once beyond the sustained rate (token bucket size).")
    var rateBurst = defaults.rateBurst

    @Option(help: "Sustained requests per second per client address, shared by all its connections (IPv6: per --ipv6-prefix-length prefix); faster requests get return code 7; 0 disables.")
    var rateLimitPerIp = defaults.rateLimitPerIP

    @Option(help: "Requests a client address may send at once beyond its sustained rate (its shared token bucket's size).")
    var rateBurstPerIp = defaults.rateBurstPerIP

    @Option(help: "Leading bits of an IPv6 client address that identify the client for the per-IP limits (1-128); IPv4 counts whole.")
    var ipv6PrefixLength = defaults.ipv6PrefixLength

    @Option(help: "Client address blocks (CIDR, comma-separated) allowed to call the admin functions 0x0001xxxx; others get return code 10; empty allows none.")
    var adminFrom = defaults.adminFrom.map(\.description).joined(separator: ",")

    @Option(help: "Seconds to complete a request once its first byte arrived; 0 disables.")
    var readTimeout = defaults.readTimeout / .seconds(1)

    @Option(help: "Seconds a connection may stay silent in both directions; 0 disables.")
    var idleTimeout = defaults.idleTimeout / .seconds(1)

    @Option(help: "Seconds to flush replies on shutdown before closing connections anyway.")
    var shutdownTimeout = defaults.shutdownTimeout / .seconds(1)

    @Option(help: "Storage state at start: read-write, read-only or maintenance.")
    var initialState: StorageState = .readWrite

    @Option(help: "Keep the storage in this directory (write-ahead log and snapshots) so acknowledged writes survive restarts and crashes; empty keeps it in memory only.")
    var dataDir = ""

    @Option(help: "With --data-dir: always (a sync per write), batch (one sync per worker loop iteration, for every write it received) or never (the kernel's page cache only).")
    var fsync: FsyncPolicy = .batch

    @Flag(help: "With --data-dir: start even if the log or snapshot is damaged, keeping the history up to the first damage and moving the rest into DIR/damaged-<time>/ (never deleted). Without it such a start is refused (exit 65).")
    var forceRecovery = false

    @Option(help: "With --data-dir: seconds between snapshots, taken when something changed (and on shutdown).")
    var snapshotInterval = 60.0

    @Option(help: "With --data-dir: log bytes since the last snapshot that trigger a snapshot sooner.")
    var snapshotLogBytes = 64 << 20

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Address of the Prometheus endpoint (GET /metrics), HOST:PORT; empty disables.")
    var metricsListen = "127.0.0.1:8088"

    @Option(help: "Open connections to the metrics endpoint; a new one past it closes the one quiet longest.")
    var metricsMaxConnections = MetricsEndpoint.Configuration().maxConnections

    @Option(help: "Seconds a metrics connection may go without completing a request or taking reply bytes; 0 disables.")
    var metricsIdleTimeout = MetricsEndpoint.Configuration().idleTimeout / .seconds(1)

    @Option(help: "Largest HTTP request head, in bytes, the metrics endpoint reads; larger ones get 431 and are closed.")
    var metricsMaxRequest = MetricsEndpoint.Configuration().maxRequestBytes

    @Flag(help: "Set SO_REUSEPORT, so a new iprotod can bind the same port before this one stops.")
    var reusePort = false

    func validate() throws {
        _ = try makeConfiguration()
        _ = try duration(snapshotInterval, "--snapshot-interval")
        guard snapshotLogBytes > 0 else { throw ValidationError("--snapshot-log-bytes must be positive") }
        if !metricsListen.isEmpty { _ = try makeMetricsConfiguration() }
    }

    func run() throws {
        // Block the stop signals before any thread exists; the main thread waits for them below.
        let stopSignals = SignalSet([SIGINT, SIGTERM])
        stopSignals.block()
        ServerMain.bootstrapLogging(level: logLevel)
        let logger = Logger(label: "iprotod")
        let descriptors = FileDescriptorLimit.raiseToHardLimit()
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(Self.metricsFactory(registry))
        Gauge(label: "\(Self.metricsPrefix)_build_info", dimensions: [("version", iprotodVersion)]).record(1)

        var configuration = try makeConfiguration()
        if let inherited = SystemdSocket.inherited() {
            configuration.listenFileDescriptor = inherited
            logger.info("serving the socket passed by systemd", metadata: ["fd": "\(inherited)"])
        }
        descriptors.check(maxConnections: configuration.maxConnections, logger: logger)
        let storage = try openStorage(prefix: configuration.metricsPrefix, logger: logger)
        let snapshots = storage.journal.map {
            SnapshotSchedule(storage: storage, journal: $0, interval: snapshotInterval,
                             logBytes: snapshotLogBytes, logger: logger)
        }
        var handlers = Handlers()
        handlers.registerStorage(storage)

        let server: Server
        do {
            server = try Server(configuration: configuration, handlers: handlers, logger: logger)
        } catch {
            throw StartFailure.environment("\(error)")
        }
        // Bind the metrics port before serving anything, so that failing to bind it fails the start.
        // It serves until the process exits.
        let endpoint = try metricsListen.isEmpty ? nil : ServerMain.startMetricsEndpoint(
            try makeMetricsConfiguration(), listen: metricsListen, registry: registry, logger: logger) { server.publishMetrics() }
        do {
            try server.start()
        } catch {
            throw StartFailure.environment("\(error)")
        }
        print("iprotod listening on \(server.address)")
        if let endpoint { print("iprotod metrics on \(endpoint.address)") }
        fflush(nil)
        logger.info("started", metadata: ["address": "\(server.address)", "workers": "\(configuration.workers)",
                                          "state": "\(storage.state.rawValue)"])

        let signal = stopSignals.wait()
        logger.info("stopping", metadata: ["signal": "\(signal)"])
        server.shutdown()
        server.wait()
        snapshots?.stopAndSnapshot()
        logger.info("stopped")
    }

    /// The storage in memory, or recovered from --data-dir with what recovery found logged.
    private func openStorage(prefix: String, logger: Logger) throws -> Storage {
        guard !dataDir.isEmpty else { return Storage(state: initialState, metricsPrefix: prefix) }
        let storage: Storage
        do {
            storage = try Storage(dataDirectory: dataDir, fsync: fsync, initialState: initialState,
                                  forceRecovery: forceRecovery, metricsPrefix: prefix, logger: logger)
        } catch {
            // A failing call is the environment's fault; anything else is what the directory holds.
            let why = "--data-dir \(dataDir): \(error)"
            throw error.systemReason == nil ? StartFailure.data(why) : StartFailure.environment(why)
        }
        let recovery = storage.recovery!
        for warning in recovery.warnings { logger.warning("\(warning)") }
        if let aside = recovery.movedAsideTo {
            logger.error("--force-recovery moved damaged data aside; its changes are not loaded", metadata: ["moved_to": "\(aside)"])
        }
        logger.info(recovery.fresh ? "storage created" : "storage recovered", metadata: [
            "data_dir": "\(dataDir)", "fsync": "\(fsync.rawValue)", "snapshot_lsn": "\(recovery.snapshotLSN)",
            "last_lsn": "\(recovery.lastLSN)", "replayed": "\(recovery.recordsReplayed)",
            "truncated_bytes": "\(recovery.truncatedBytes)", "state": "\(storage.state.rawValue)",
        ])
        return storage
    }

    private func makeMetricsConfiguration() throws -> MetricsEndpoint.Configuration {
        let (host, port) = try parseListenAddress(metricsListen, flag: "--metrics-listen")
        var configuration = MetricsEndpoint.Configuration(host: host, port: port)
        configuration.maxConnections = metricsMaxConnections
        configuration.idleTimeout = try duration(metricsIdleTimeout, "--metrics-idle-timeout")
        configuration.maxRequestBytes = metricsMaxRequest
        configuration.metricsPrefix = Self.metricsPrefix
        do {
            try configuration.validate()
        } catch {
            throw ValidationError("metrics endpoint: \(error)")
        }
        return configuration
    }

    /// Prometheus through swift-metrics, every family with its help text; request latencies from 5 µs to 1 s.
    private static func metricsFactory(_ registry: PrometheusCollectorRegistry) -> DocumentedMetricsFactory {
        let prefix = metricsPrefix
        var help = Server.metricHelp(prefix: prefix).merging(Storage.metricHelp(prefix: prefix)) { first, _ in first }
        help["\(prefix)_build_info"] = "Always 1; the version label says which iprotod this is."
        return DocumentedMetricsFactory(registry: registry, help: help, durationBuckets: [
            .microseconds(5), .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100),
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(100), .milliseconds(250), .seconds(1),
        ])
    }

    private func makeConfiguration() throws -> Configuration {
        let (host, port) = try parseListenAddress(listen)
        var configuration = Configuration(host: host, port: port)
        configuration.workers = workers
        configuration.maxBodyBytes = maxBody
        configuration.maxOutputBytes = maxOutput
        configuration.memoryBudgetBytes = memoryBudget
        configuration.maxConnections = maxConnections
        configuration.maxConnectionsPerIP = maxConnectionsPerIp
        configuration.rateLimit = rateLimit
        configuration.rateBurst = rateBurst
        configuration.rateLimitPerIP = rateLimitPerIp
        configuration.rateBurstPerIP = rateBurstPerIp
        configuration.ipv6PrefixLength = ipv6PrefixLength
        configuration.adminFrom = try adminFrom.split(separator: ",").map { text in
            let trimmed = text.filter { !$0.isWhitespace }
            guard let block = CIDR(trimmed) else {
                throw ValidationError("--admin-from must be comma-separated CIDR blocks such as 127.0.0.0/8,::1/128, got \"\(trimmed)\"")
            }
            return block
        }
        configuration.reusePort = reusePort
        configuration.metricsPrefix = Self.metricsPrefix
        configuration.readTimeout = try duration(readTimeout, "--read-timeout")
        configuration.idleTimeout = try duration(idleTimeout, "--idle-timeout")
        configuration.shutdownTimeout = try duration(shutdownTimeout, "--shutdown-timeout")
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.message)
        }
        return configuration
    }
}

extension StorageState: ExpressibleByArgument {}
extension FsyncPolicy: ExpressibleByArgument {}
