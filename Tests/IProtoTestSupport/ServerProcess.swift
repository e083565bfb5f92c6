import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The real `iprotod` binary, started on an ephemeral loopback port.
public final class ServerProcess {
    public let process: Process
    public let port: Int
    /// The Prometheus endpoint's port.
    public let metricsPort: Int
    private let output: Pipe

    /// Where the binary is: $IPROTOD_BIN, else beside the test bundle (same build folder).
    public static var binaryPath: String {
        if let path = ProcessInfo.processInfo.environment["IPROTOD_BIN"] { return path }
        return siblingPath("iprotod")
    }

    /// Another executable of the package, from the same build folder as iprotod.
    public static func siblingPath(_ name: String) -> String {
        let folder = ProcessInfo.processInfo.environment["IPROTOD_BIN"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: CommandLine.arguments[0])
        return folder.deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Runs `path` to completion; returns its exit status, standard output and standard error.
    public static func run(_ path: String, _ arguments: [String],
                           environment: [String: String]? = nil) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// Starts `iprotod --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 ARGUMENTS`
    /// and waits for the two address lines. `environment` is added to the
    /// inherited one; with `log` set, standard error goes to that file, with
    /// `standardError` to that handle. A `launcher` (a program and its
    /// arguments, which must exec the command line that follows them, keeping
    /// its pid) runs iprotod under conditions such as a lower open-file limit.
    public init(_ arguments: [String] = [], environment: [String: String] = [:], log: String? = nil,
                standardError: FileHandle? = nil, launcher: [String] = [], startupTimeout: Double = 20) throws {
        process = Process()
        let command = launcher + [Self.binaryPath, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"] + arguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        output = Pipe()
        process.standardOutput = output
        if let standardError {
            process.standardError = standardError
        } else if let log {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: log)
        } else {
            process.standardError = ProcessInfo.processInfo.environment["IPROTO_TEST_VERBOSE"] == nil
                ? FileHandle.nullDevice : FileHandle.standardError
        }
        try process.run()
        do {
            let fd = output.fileHandleForReading.fileDescriptor
            port = try Self.port(in: try Self.readLine(fd, timeout: startupTimeout), after: "iprotod listening on ")
            metricsPort = try Self.port(in: try Self.readLine(fd, timeout: startupTimeout), after: "iprotod metrics on ")
        } catch {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw error
        }
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Sends `signal` and waits for the exit status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM) -> Int32 {
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        return process.terminationStatus
    }

    public func connect(timeout: Double = 10) throws -> TestConnection {
        try TestConnection(port: port, timeout: timeout)
    }

    /// The Prometheus text served at GET /metrics.
    public func scrapeMetrics() throws -> String {
        let connection = try TestConnection(port: metricsPort)
        try connection.send(Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
        let response = String(decoding: try connection.receiveUntilClosed(), as: UTF8.self)
        guard response.hasPrefix("HTTP/1.1 200"), let split = response.range(of: "\r\n\r\n") else {
            throw TestSocketError("unexpected metrics response: \(response.prefix(200))")
        }
        return String(response[split.upperBound...])
    }

    /// The scraped samples by series (`name{label="value",...}` as printed), summing nothing.
    public func metrics() throws -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in try scrapeMetrics().split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    /// The sum of every series of `name` whose labels include all of `labels`.
    public func metric(_ name: String, _ labels: [String: String] = [:]) throws -> Double {
        try metrics().filter { series, _ in
            guard series == name || series.hasPrefix(name + "{") else { return false }
            return labels.allSatisfy { series.contains("\($0.key)=\"\($0.value)\"") }
        }.values.reduce(0, +)
    }

    /// Resident set size of the server process, in bytes (from /proc).
    public var residentBytes: Int { statusField("VmRSS:") }

    /// Virtual memory size of the server process, in bytes: unlike RSS it also
    /// shows memory allocated but not yet touched.
    public var virtualBytes: Int { statusField("VmSize:") }

    private func statusField(_ name: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) }),
              let kib = Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
        else { return 0 }
        return kib * 1024
    }

    private static func port(in line: String, after prefix: String) throws -> Int {
        guard line.hasPrefix(prefix), let text = line.split(separator: ":").last, let port = Int(text) else {
            throw TestSocketError("unexpected line from iprotod: \"\(line)\" (expected \"\(prefix)HOST:PORT\")")
        }
        return port
    }

    private static func readLine(_ fd: Int32, timeout: Double) throws -> String {
        var line: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            var byte: UInt8 = 0
            guard read(fd, &byte, 1) == 1 else { break }
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        throw TestSocketError("iprotod printed no address line within \(timeout) s (got \"\(String(decoding: line, as: UTF8.self))\")")
    }
}

/// Runs a program with its output discarded and waits for it, without
/// Foundation's Process: that never reaps a client whose child daemonizes
/// (tmux new-session), and its pipes would stay open in the daemon.
public func spawnAndWait(_ arguments: [String]) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    var argv = arguments.map { strdup($0) } + [nil]
    defer { for argument in argv { free(argument) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, arguments[0], &actions, nil, &argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status >> 8) & 0xff
}

/// Polls `condition` every 10 ms until it holds or `timeout` (seconds) passes.
public func eventually(_ timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}
