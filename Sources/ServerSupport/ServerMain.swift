import ArgumentParser
import IProto
import IProtoPrometheus
import Logging
import Prometheus

#if canImport(Glibc)
import Glibc
#endif

/// The start-up and shutdown every server binary of the package shares: one place for
/// how a failed start is reported, how logging is set up and how the metrics port is bound.
public enum ServerMain {
    /// Parses the command line, runs the command and exits. A failed start is one line
    /// on standard error, `NAME: why`, with the status of its `StartFailure`; a bad
    /// flag is one line with status 64; `--help` and `--version` print as usual.
    public static func run<Command: ParsableCommand>(_ type: Command.Type, name: String,
                                                     arguments: [String]? = nil) -> Never {
        do {
            var command = try type.parseAsRoot(arguments)
            try command.run()
            exit(0)
        } catch {
            fail(type, name: name, error)
        }
    }

    /// `run` for commands whose `run` is asynchronous.
    public static func runAsync<Command: AsyncParsableCommand>(_ type: Command.Type, name: String,
                                                          arguments: [String]? = nil) async -> Never {
        do {
            var command = try type.parseAsRoot(arguments)
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch {
            fail(type, name: name, error)
        }
    }

    private static func fail<Command: ParsableCommand>(_ type: Command.Type, name: String, _ error: any Error) -> Never {
        if let failure = error as? StartFailure { printError(name, failure.description, status: failure.exitCode) }
        // --help and friends print as usual.
        guard type.exitCode(for: error) != .success else { type.exit(withError: error) }
        // ArgumentParser lists allowed values one per line ("\n  - trace"); fold them into the line.
        let message = type.message(for: error).split(separator: "\n")
            .map { $0.hasPrefix("  - ") ? $0.dropFirst(4) : $0 }
            .joined(separator: " ")
        printError(name, message, status: type.exitCode(for: error).rawValue)
    }

    /// Writes with write(2), not print: standard output may be a pipe the reader closed.
    private static func printError(_ name: String, _ message: String, status: Int32) -> Never {
        let line = "\(name): \(message)\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        exit(status)
    }

    /// Log lines to standard error at `level`; a closed pipe must not kill the process (SIGPIPE ignored).
    public static func bootstrapLogging(level: Logger.Level) {
        signal(SIGPIPE, SIG_IGN)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// Binds and starts GET /metrics on `configuration`, or fails the start with status 69;
    /// returns the bound address. `publish` refreshes gauges before each scrape.
    public static func startMetricsEndpoint(_ configuration: MetricsEndpoint.Configuration, listen: String,
                                            registry: PrometheusCollectorRegistry, logger: Logger,
                                            publish: @escaping @Sendable () -> Void) throws(StartFailure) -> MetricsEndpoint {
        do {
            let endpoint = try MetricsEndpoint(configuration: configuration, registry: registry, logger: logger, beforeScrape: publish)
            endpoint.start()
            return endpoint
        } catch {
            throw .environment("cannot serve metrics on \(listen): \(error)")
        }
    }

    /// `startMetricsEndpoint` with the defaults, for `--metrics-listen HOST:PORT`; nil when it is empty.
    public static func startMetricsEndpoint(listen: String, prefix: String, registry: PrometheusCollectorRegistry, logger: Logger,
                                            publish: @escaping @Sendable () -> Void) throws -> MetricsEndpoint? {
        guard !listen.isEmpty else { return nil }
        let (host, port) = try parseListenAddress(listen, flag: "--metrics-listen")
        var configuration = MetricsEndpoint.Configuration(host: host, port: port)
        configuration.metricsPrefix = prefix
        return try startMetricsEndpoint(configuration, listen: listen, registry: registry, logger: logger, publish: publish)
    }

    /// A node that peers or a gateway dial must advertise an address they can reach.
    public static func requireReachable(listen: String, host: String, advertise: String?, reader: String) throws(StartFailure) {
        if advertise == nil, ["0.0.0.0", "::", "[::]"].contains(host) {
            throw .configuration("--listen \(listen) is a wildcard address: give --advertise HOST:PORT for \(reader)")
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
