import ArgumentParser
import Dispatch
import Foundation
import Histogram
import IProto
import KVAPI
import IProtoClient
import IProtoStorage
import Synchronization

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load a server with pipelined storage calls and report throughput and latency.",
        discussion: """
            Each connection writes PIPELINE requests at once, reads their replies, and repeats \
            (with --rate, at that total pace, the connections' starts spread over one period). \
            The connections are shared among --threads threads, each driving its own over epoll, \
            as redis-benchmark does, so the load generator costs the machine little. Latency is \
            from a batch's write (with --rate, from when it was due) to each reply, recorded in HdrHistogram. A progress line goes \
            to standard error every second; --json prints the summary as JSON.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Connections.")
    var connections = 50

    @Option(help: "Threads driving the connections.")
    var threads = 1

    @Option(help: "Requests written at once per connection (pipeline depth).")
    var pipeline = 1

    @Option(help: "Seconds to run (unless --requests is given).")
    var duration = 10.0

    @Option(help: "Total requests to send instead of running for a duration.")
    var requests: Int?

    @Option(help: "Operation mix as weights, e.g. read=90,replace=10, or for the key-value cluster's leader kvget=90,kvset=10 (keys are UUID4s made from the key number).")
    var mix = "read=100"

    @Option(help: "Target total requests per second (default: as fast as possible).")
    var rate: Double?

    @Option(help: "Bytes per REPLACE or KV_SET value.")
    var valueSize = 32

    @Option(help: "Slots (or kv keys) used, from 0.")
    var keys = 1000

    @Flag(help: "Print the summary as JSON on standard output.")
    var json = false

    func validate() throws {
        guard connections >= 1, connections <= 10_000 else { throw ValidationError("--connections must be 1-10000") }
        guard threads >= 1, threads <= connections else { throw ValidationError("--threads must be 1-connections") }
        guard pipeline >= 1, pipeline <= 100_000 else { throw ValidationError("--pipeline must be 1-100000") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        guard requests.map({ $0 >= connections * pipeline }) ?? true else {
            throw ValidationError("--requests must be at least connections x pipeline")
        }
        guard rate.map({ $0 > 0 }) ?? true else { throw ValidationError("--rate must be positive") }
        let operations = try parseMix(mix)
        if operations.contains(where: \.isKV) {
            guard operations.allSatisfy(\.isKV) else { throw ValidationError("--mix cannot mix storage and kv operations") }
            guard (1...(8 << 20)).contains(valueSize) else { throw ValidationError("--value-size must be 1-8388608 for kv") }
            guard (1...10_000_000).contains(keys) else { throw ValidationError("--keys must be 1-10000000 for kv") }
        } else {
            guard (0...Storage.maxValueBytes).contains(valueSize) else { throw ValidationError("--value-size must be 0-256") }
            guard (1...Storage.slotCount).contains(keys) else { throw ValidationError("--keys must be 1-1000") }
        }
    }

    func run() throws {
        let operations = try parseMix(mix)
        let value = String(repeating: "v", count: valueSize)
        let started = DispatchTime.now().uptimeNanoseconds
        let plan = LoadPlan(
            connections: connections, pipeline: pipeline,
            batchesPerConnection: requests.map { ($0 + connections * pipeline - 1) / (connections * pipeline) },
            deadline: started + UInt64(duration * 1e9),
            interval: rate.map { UInt64(Double(connections * pipeline) / $0 * 1e9) },
            replyTimeout: UInt64(connection.timeout * 1e9))
        let progress = Progress()
        let results = Mutex<[WorkerResult]>([])
        let failure = Mutex<String?>(nil)

        let group = DispatchGroup()
        for thread in 0..<threads {
            group.enter()
            let thread = Thread { [connection] in
                defer { group.leave() }
                do {
                    let lanes = try stride(from: thread, to: connections, by: threads).map { index in
                        do {
                            return try Lane(index: index, host: connection.host, port: connection.port,
                                            timeout: .seconds(connection.timeout), pipeline: pipeline,
                                            operations: operations, keys: keys, value: value)
                        } catch {
                            throw LoadFailure(connection: index, error: error)
                        }
                    }
                    let result = try LoadThread(lanes: lanes, plan: plan, progress: progress).run()
                    results.withLock { $0.append(result) }
                } catch {
                    failure.withLock { $0 = $0 ?? "\(error)" }
                }
            }
            thread.stackSize = 512 * 1024
            thread.start()
        }
        while group.wait(timeout: .now() + 1) == .timedOut {
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let done = progress.requests.load(ordering: .relaxed)
            FileHandle.standardError.write(Data(String(format: "\r%6.1f s  %12d requests  %10.0f req/s ", elapsed, done,
                                                       Double(done) / elapsed).utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        if let failure = failure.withLock({ $0 }) { throw ValidationError(failure) }

        let summary = Summary(results.withLock { $0 },
                              seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9,
                              connections: connections, pipeline: pipeline)
        print(json ? summary.json : summary.text)
    }
}

/// Requests written by all connections so far, for the progress line.
final class Progress: Sendable {
    let requests = Atomic(0)
}

/// What a benchmark request does: the storage's READ and REPLACE, or the key-value
/// cluster's GET and SET (sent to the leader; keys are UUID4s made from the key number).
enum BenchOperation: Sendable {
    case read, replace, kvGet, kvSet

    var isKV: Bool { self == .kvGet || self == .kvSet }

    /// The UUID4 for key number `n`: `0000000n-0000-4000-8000-00000000000n` in hex.
    static func kvKey(_ n: Int) -> String {
        let hex = String(n, radix: 16)
        let low = String(repeating: "0", count: max(0, 12 - hex.count)) + hex
        let high = String(repeating: "0", count: max(0, 8 - hex.count)) + hex
        return "\(high.suffix(8))-0000-4000-8000-\(low.suffix(12))"
    }
}

/// Parses "read=90,replace=10" (or "kvget=90,kvset=10") into a repeating pattern of operations (at most 100 long).
func parseMix(_ text: String) throws -> [BenchOperation] {
    var weights: [(BenchOperation, Int)] = []
    for part in text.split(separator: ",") {
        let pair = part.split(separator: "=")
        guard pair.count == 2, let weight = Int(pair[1]), weight >= 0 else {
            throw ValidationError("--mix must look like read=90,replace=10, got \"\(text)\"")
        }
        switch pair[0] {
        case "read": weights.append((.read, weight))
        case "replace": weights.append((.replace, weight))
        case "kvget": weights.append((.kvGet, weight))
        case "kvset": weights.append((.kvSet, weight))
        default: throw ValidationError("--mix knows read, replace, kvget and kvset, got \"\(pair[0])\"")
        }
    }
    let total = weights.reduce(0) { $0 + $1.1 }
    guard total > 0 else { throw ValidationError("--mix needs a positive weight") }
    // Interleave in proportion: operation i is chosen when its share falls behind.
    var pattern: [BenchOperation] = []
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

/// What every load thread follows; times are `DispatchTime` nanoseconds.
struct LoadPlan: Sendable {
    let connections: Int
    let pipeline: Int
    /// Batches each connection sends, or nil to send until `deadline`.
    let batchesPerConnection: Int?
    let deadline: UInt64
    /// With a target rate: the time between one connection's batches.
    let interval: UInt64?
    /// How long replies may stop coming before the run fails.
    let replyTimeout: UInt64
}

/// A connection that could not be opened or failed mid-run.
struct LoadFailure: Error, CustomStringConvertible {
    let connection: Int
    let error: any Error
    var description: String { "connection \(connection): \(error)" }
}

/// One connection of the load: its fixed cycle of request batches and where it is in it.
struct Lane {
    let index: Int
    let connection: PipelinedConnection
    private let batches: [[UInt8]]
    private var nextBatch = 0
    /// Replies still expected for the batch in flight.
    var awaiting = 0
    var sentAt: UInt64 = 0
    /// When the next batch is due (with a target rate).
    var dueAt: UInt64 = 0
    var batchesSent = 0

    init(index: Int, host: String, port: Int, timeout: Duration, pipeline: Int, operations: [BenchOperation],
         keys: Int, value: String) throws {
        self.index = index
        connection = try PipelinedConnection(host: host, port: port, timeout: timeout)
        // A fixed cycle of batches, built once: the loop only writes them.
        let cycle = max(1, operations.count * keys / max(1, pipeline) / 10)
        batches = (0..<min(cycle, 64)).map { batch in
            var bytes: [UInt8] = []
            for slot in 0..<pipeline {
                let n = (index * 7919 + batch * pipeline + slot)
                let key = Int64(n % keys)
                var body = MessagePackWriter()
                switch operations[n % operations.count] {
                case .replace:
                    body.write(.int(key))
                    body.write(.string(value))
                    bytes += Framing.request(funcID: StorageFunction.replace.rawValue, requestID: UInt32(slot), body: body.bytes)
                case .read:
                    body.write(.int(key))
                    bytes += Framing.request(funcID: StorageFunction.read.rawValue, requestID: UInt32(slot), body: body.bytes)
                case .kvSet:
                    body.write(.string(BenchOperation.kvKey(Int(key))))
                    body.write(.string(value))
                    bytes += Framing.request(funcID: KVFunction.set.rawValue, requestID: UInt32(slot), body: body.bytes)
                case .kvGet:
                    body.write(.string(BenchOperation.kvKey(Int(key))))
                    bytes += Framing.request(funcID: KVFunction.get.rawValue, requestID: UInt32(slot), body: body.bytes)
                }
            }
            return bytes
        }
    }

    /// The next batch of the cycle.
    mutating func takeBatch() -> [UInt8] {
        defer { nextBatch = (nextBatch + 1) % batches.count }
        return batches[nextBatch]
    }
}

/// Drives a share of the connections from one thread: each connection has one
/// batch in flight at a time; a reply is read as soon as epoll reports it.
final class LoadThread {
    private var lanes: [Lane]
    private let plan: LoadPlan
    private let progress: Progress
    private let poller: Poller
    private var result = WorkerResult()
    /// Lanes that will send again or still wait for replies.
    private var unfinished: Int

    init(lanes: [Lane], plan: LoadPlan, progress: Progress) throws(ClientError) {
        self.lanes = lanes
        self.plan = plan
        self.progress = progress
        poller = try Poller()
        unfinished = lanes.count
        let now = DispatchTime.now().uptimeNanoseconds
        for token in lanes.indices {
            poller.watch(lanes[token].connection, token: token)
            // At a target rate, the connections' first batches are spread over one interval.
            self.lanes[token].dueAt = now + (plan.interval ?? 0) * UInt64(lanes[token].index) / UInt64(plan.connections)
        }
    }

    func run() throws -> WorkerResult {
        var lastReply = DispatchTime.now().uptimeNanoseconds
        while unfinished > 0 {
            let now = DispatchTime.now().uptimeNanoseconds
            var waitNanoseconds: UInt64 = 100_000_000  // bounded, so the deadline and timeouts are seen
            for token in lanes.indices where lanes[token].awaiting == 0 && lanes[token].dueAt != .max {
                if lanes[token].dueAt <= now {
                    try start(token, now: now)
                } else {
                    waitNanoseconds = min(waitNanoseconds, lanes[token].dueAt - now)
                }
            }
            var replied = false
            try poller.wait(milliseconds: Int32((waitNanoseconds + 999_999) / 1_000_000)) { token throws(LoadFailure) in
                replied = try service(token) || replied
            }
            let after = DispatchTime.now().uptimeNanoseconds
            if replied {
                lastReply = after
            } else if after - lastReply > plan.replyTimeout, lanes.contains(where: { $0.awaiting > 0 }) {
                throw LoadFailure(connection: lanes.first { $0.awaiting > 0 }!.index, error: ClientError.timedOut)
            }
        }
        return result
    }

    /// Sends the lane's next batch, or retires the lane when the run is over.
    private func start(_ token: Int, now: UInt64) throws(LoadFailure) {
        let sent = lanes[token].batchesSent
        guard plan.batchesPerConnection.map({ sent < $0 }) ?? (now < plan.deadline) else {
            lanes[token].dueAt = .max
            unfinished -= 1
            return
        }
        lanes[token].batchesSent += 1
        lanes[token].awaiting = plan.pipeline
        // At a target rate, latency counts from when the batch was due, not from when a
        // late lane got to send it: a server that stalls is charged for the wait its
        // callers would have seen (no coordinated omission, as in wrk2).
        lanes[token].sentAt = plan.interval == nil ? now : min(now, lanes[token].dueAt)
        lanes[token].dueAt = plan.interval.map { lanes[token].dueAt + $0 } ?? now
        let batch = lanes[token].takeBatch()
        do {
            try lanes[token].connection.send(batch)
        } catch {
            throw LoadFailure(connection: lanes[token].index, error: error)
        }
        if lanes[token].connection.hasPendingOutput { poller.watch(lanes[token].connection, token: token, writable: true) }
        progress.requests.add(plan.pipeline, ordering: .relaxed)
    }

    /// Writes what waits, reads what arrived, and records the replies; true if there were any.
    private func service(_ token: Int) throws(LoadFailure) -> Bool {
        let connection = lanes[token].connection
        do {
            if connection.hasPendingOutput {
                try connection.flush()
                if !connection.hasPendingOutput { poller.watch(connection, token: token) }
            }
            try connection.receive()
        } catch {
            throw LoadFailure(connection: lanes[token].index, error: error)
        }
        let now = DispatchTime.now().uptimeNanoseconds
        var replies = 0
        while let (_, code) = connection.nextReply() {
            guard lanes[token].awaiting > 0 else {
                throw LoadFailure(connection: lanes[token].index,
                                  error: ClientError.protocolViolation("a reply to no request"))
            }
            lanes[token].awaiting -= 1
            replies += 1
            result.latency.record(now - lanes[token].sentAt)
            if code != .ok { result.errors[code.rawValue, default: 0] += 1 }
        }
        if replies > 0, lanes[token].awaiting == 0, plan.interval == nil {
            try start(token, now: now)
        }
        return replies > 0
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
