import ArgumentParser
import Dispatch
import Foundation
import Histogram
import IProto
import IProtoClient
import IProtoStorage
import Synchronization

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load a server with pipelined storage calls and report throughput and latency.",
        discussion: """
            Each connection runs on its own thread: it writes PIPELINE requests in one call, \
            reads their replies, and repeats (with --rate, at that total pace). Latency is \
            from a batch's write to each reply, recorded in HdrHistogram. A progress line \
            goes to standard error every second; --json prints the summary as JSON.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Connections, one thread each.")
    var connections = 50

    @Option(help: "Requests written at once per connection (pipeline depth).")
    var pipeline = 1

    @Option(help: "Seconds to run (unless --requests is given).")
    var duration = 10.0

    @Option(help: "Total requests to send instead of running for a duration.")
    var requests: Int?

    @Option(help: "Operation mix as weights, e.g. read=90,replace=10.")
    var mix = "read=100"

    @Option(help: "Target total requests per second (default: as fast as possible).")
    var rate: Double?

    @Option(help: "Bytes per REPLACE value.")
    var valueSize = 32

    @Option(help: "Slots used, from 0.")
    var keys = 1000

    @Flag(help: "Print the summary as JSON on standard output.")
    var json = false

    func validate() throws {
        guard connections >= 1, connections <= 10_000 else { throw ValidationError("--connections must be 1-10000") }
        guard pipeline >= 1, pipeline <= 100_000 else { throw ValidationError("--pipeline must be 1-100000") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        guard requests.map({ $0 >= connections * pipeline }) ?? true else {
            throw ValidationError("--requests must be at least connections x pipeline")
        }
        guard rate.map({ $0 > 0 }) ?? true else { throw ValidationError("--rate must be positive") }
        guard (0...Storage.maxValueBytes).contains(valueSize) else { throw ValidationError("--value-size must be 0-256") }
        guard (1...Storage.slotCount).contains(keys) else { throw ValidationError("--keys must be 1-1000") }
        _ = try parseMix(mix)
    }

    func run() throws {
        let operations = try parseMix(mix)
        let value = String(repeating: "v", count: valueSize)
        let batchesPerConnection = requests.map { Int(($0 + connections * pipeline - 1) / (connections * pipeline)) }
        let batchInterval = rate.map { Double(connections * pipeline) / $0 }
        let deadline = Date().addingTimeInterval(duration)
        let progress = Progress()
        let results = Mutex<[WorkerResult]>([])
        let failure = Mutex<String?>(nil)
        let started = Date()

        let group = DispatchGroup()
        for worker in 0..<connections {
            group.enter()
            let thread = Thread { [connection] in
                defer { group.leave() }
                do {
                    var load = try Load(worker: worker, host: connection.host, port: connection.port,
                                        timeout: .seconds(connection.timeout), pipeline: pipeline,
                                        operations: operations, keys: keys, value: value)
                    let result = try load.run(batches: batchesPerConnection, until: deadline,
                                              interval: batchInterval, progress: progress)
                    results.withLock { $0.append(result) }
                } catch {
                    failure.withLock { $0 = $0 ?? "connection \(worker): \(error)" }
                }
            }
            thread.stackSize = 256 * 1024
            thread.start()
        }
        while group.wait(timeout: .now() + 1) == .timedOut {
            let elapsed = Date().timeIntervalSince(started)
            let done = progress.requests.load(ordering: .relaxed)
            FileHandle.standardError.write(Data(String(format: "\r%6.1f s  %12d requests  %10.0f req/s ", elapsed, done,
                                                       Double(done) / elapsed).utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        if let failure = failure.withLock({ $0 }) { throw ValidationError(failure) }

        let summary = Summary(results.withLock { $0 }, seconds: Date().timeIntervalSince(started),
                              connections: connections, pipeline: pipeline)
        print(json ? summary.json : summary.text)
    }
}

/// Requests written by all connections so far, for the progress line.
final class Progress: Sendable {
    let requests = Atomic(0)
}

/// Parses "read=90,replace=10" into a repeating pattern of operations (at most 100 long).
func parseMix(_ text: String) throws -> [StorageFunction] {
    var weights: [(StorageFunction, Int)] = []
    for part in text.split(separator: ",") {
        let pair = part.split(separator: "=")
        guard pair.count == 2, let weight = Int(pair[1]), weight >= 0 else {
            throw ValidationError("--mix must look like read=90,replace=10, got \"\(text)\"")
        }
        switch pair[0] {
        case "read": weights.append((.read, weight))
        case "replace": weights.append((.replace, weight))
        default: throw ValidationError("--mix knows read and replace, got \"\(pair[0])\"")
        }
    }
    let total = weights.reduce(0) { $0 + $1.1 }
    guard total > 0 else { throw ValidationError("--mix needs a positive weight") }
    // Interleave in proportion: operation i is chosen when its share falls behind.
    var pattern: [StorageFunction] = []
    var given = Array(repeating: 0, count: weights.count)
    for step in 1...100 {
        let next = weights.indices.max { lhs, rhs in
            Double(weights[lhs].1) * Double(step) / Double(total) - Double(given[lhs])
                < Double(weights[rhs].1) * Double(step) / Double(total) - Double(given[rhs])
        }!
        given[next] += 1
        pattern.append(weights[next].0)
    }
    return pattern
}

/// One connection's load loop and what it measured.
struct Load {
    private let connection: PipelinedConnection
    private let pipeline: Int
    private var frames: [[UInt8]]
    private var nextFrame = 0

    init(worker: Int, host: String, port: Int, timeout: Duration, pipeline: Int, operations: [StorageFunction],
         keys: Int, value: String) throws {
        connection = try PipelinedConnection(host: host, port: port, timeout: timeout)
        self.pipeline = pipeline
        // A fixed cycle of batches, built once: the loop only writes them.
        let cycle = max(1, operations.count * keys / max(1, pipeline) / 10)
        frames = (0..<min(cycle, 64)).map { batch in
            var bytes: [UInt8] = []
            for slot in 0..<pipeline {
                let n = (worker * 7919 + batch * pipeline + slot)
                let index = Int64(n % keys)
                var body = MessagePackWriter()
                switch operations[n % operations.count] {
                case .replace:
                    body.write(.int(index))
                    body.write(.string(value))
                    bytes += Framing.request(funcID: StorageFunction.replace.rawValue, requestID: UInt32(slot), body: body.bytes)
                default:
                    body.write(.int(index))
                    bytes += Framing.request(funcID: StorageFunction.read.rawValue, requestID: UInt32(slot), body: body.bytes)
                }
            }
            return bytes
        }
    }

    mutating func run(batches: Int?, until deadline: Date, interval: Double?, progress: Progress) throws -> WorkerResult {
        var result = WorkerResult()
        var nextSend = DispatchTime.now().uptimeNanoseconds
        var sent = 0
        while batches.map({ sent < $0 }) ?? (Date() < deadline) {
            if let interval {
                let now = DispatchTime.now().uptimeNanoseconds
                if nextSend > now { usleep(UInt32((nextSend - now) / 1000)) }
                nextSend += UInt64(interval * 1e9)
            }
            let start = DispatchTime.now().uptimeNanoseconds
            try connection.send(frames[nextFrame])
            nextFrame = (nextFrame + 1) % frames.count
            for _ in 0..<pipeline {
                let (_, code) = try connection.nextReply()
                let latency = DispatchTime.now().uptimeNanoseconds - start
                result.latency.record(latency)
                if code != .ok { result.errors[code.rawValue, default: 0] += 1 }
            }
            sent += 1
            progress.requests.add(pipeline, ordering: .relaxed)
        }
        return result
    }
}

struct WorkerResult: Sendable {
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    var errors: [UInt32: Int] = [:]
}

/// The merged results.
struct Summary {
    let requests: UInt64
    let seconds: Double
    let connections: Int
    let pipeline: Int
    let errors: [UInt32: Int]
    let percentiles: [(String, Double)]  // name, microseconds

    init(_ results: [WorkerResult], seconds: Double, connections: Int, pipeline: Int) {
        var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var errors: [UInt32: Int] = [:]
        for result in results {
            merged.add(result.latency)
            errors.merge(result.errors, uniquingKeysWith: +)
        }
        requests = merged.totalCount
        self.seconds = seconds
        self.connections = connections
        self.pipeline = pipeline
        self.errors = errors
        percentiles = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)].map {
            ($0.0, Double(merged.valueAtPercentile($0.1)) / 1000)
        } + [("max", Double(merged.max) / 1000)]
    }

    var throughput: Double { Double(requests) / seconds }

    var text: String {
        var lines = [String(format: "%d requests in %.2f s over %d connections, pipeline %d: %.0f req/s",
                            requests, seconds, connections, pipeline, throughput)]
        lines.append("latency (µs): " + percentiles.map { String(format: "%@ %.1f", $0.0, $0.1) }.joined(separator: "  "))
        lines.append(errors.isEmpty ? "errors: none"
            : "errors: " + errors.sorted { $0.key < $1.key }.map { "code \($0.key): \($0.value)" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    var json: String {
        let latency = percentiles.map { "\"\($0.0)\": \(String(format: "%.1f", $0.1))" }.joined(separator: ", ")
        let errorList = errors.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ")
        return """
            {"requests": \(requests), "seconds": \(String(format: "%.3f", seconds)), \
            "connections": \(connections), "pipeline": \(pipeline), \
            "throughput": \(String(format: "%.1f", throughput)), \
            "latency_us": {\(latency)}, "errors": {\(errorList)}}
            """
    }
}
