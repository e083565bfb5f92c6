import Dispatch
import Foundation
import IProto
import IProtoTestSupport
import Synchronization
import Testing

/// Rate limits, per-address limits, metrics and graceful shutdown, through the real binary.
@Suite struct RateLimitTests {
    @Test func requestsOverTheBucketAreRefusedAndCounted() throws {
        let server = try ServerProcess(["--rate-limit", "10", "--rate-burst", "5"])
        let connection = try server.connect()
        var batch: [UInt8] = []
        for id in 0..<20 { batch += Framing.request(funcID: API.read, requestID: UInt32(id), body: messagePack(1)) }
        try connection.send(batch)
        let codes = try (0..<20).map { _ in try connection.readResponse() }
        #expect(codes.prefix(5).allSatisfy { $0.returnCode == .ok })
        #expect(codes.dropFirst(5).allSatisfy { $0.returnCode == .rateLimited })
        #expect(codes.last?.string == "rate limit of 10 requests/s per connection exceeded")
        // Tokens come back at the configured rate: 10/s gives one within 150 ms.
        usleep(150_000)
        #expect(try connection.read(1).returnCode == .ok)
        #expect(try server.metric("iprotod_rate_limited_total", ["limit": "connection"]) == 15)
        #expect(try server.metric("iprotod_rate_limited_total", ["limit": "address"]) == 0)
        #expect(try server.metric("iprotod_requests_total", ["function": "STORAGE_READ", "code": "7"]) == 15)
    }

    /// The case: many connections from one address, each within its own
    /// limit, together over the address's. The rate is so low that no token
    /// comes back while the test runs, so the counts are exact.
    @Test func connectionsFromOneAddressShareItsBucket() throws {
        let server = try ServerProcess(["--rate-limit-per-ip", "0.01", "--rate-burst-per-ip", "50", "--workers", "2"])
        let connections = try (0..<20).map { _ in try TestConnection(port: server.port, source: "127.0.0.2") }
        var batch: [UInt8] = []
        for id in 0..<10 { batch += Framing.request(funcID: API.read, requestID: UInt32(id), body: messagePack(1)) }
        for connection in connections { try connection.send(batch) }
        var codes: [ReturnCode: Int] = [:]
        var messages = Set<String>()
        for connection in connections {
            for _ in 0..<10 {
                let response = try connection.readResponse()
                codes[response.returnCode, default: 0] += 1
                if response.returnCode == .rateLimited { messages.insert(response.string ?? "") }
            }
        }
        #expect(codes == [.ok: 50, .rateLimited: 150], "20 connections × 10 requests against one burst of 50")
        #expect(messages == ["rate limit of 0.01 requests/s per client address exceeded"])
        // Another address has its own bucket.
        #expect(try TestConnection(port: server.port, source: "127.0.0.3").read(1).returnCode == .ok)
        // Reconnecting does not refill it: the entry outlives the address's last connection.
        for connection in connections { connection.shutdownWrite() }
        for connection in connections { #expect(connection.nextOutcome() == .closed) }
        #expect(eventually { (try? server.metric("iprotod_connections_active")) == 0 })
        #expect(try TestConnection(port: server.port, source: "127.0.0.2").read(1).returnCode == .rateLimited)
        #expect(try server.metric("iprotod_rate_limited_total", ["limit": "address"]) == 151)
        #expect(try server.metric("iprotod_rate_limited_total", ["limit": "connection"]) == 0)
    }

    @Test func rateLimitPerIPZeroDisablesIt() throws {
        let server = try ServerProcess(["--rate-limit-per-ip", "0", "--rate-burst-per-ip", "1"])
        let connections = try (0..<3).map { _ in try server.connect() }
        for connection in connections {
            for _ in 0..<3 { #expect(try connection.read(1).returnCode == .ok) }
        }
    }

    @Test func rateLimitZeroDisablesIt() throws {
        let server = try ServerProcess(["--rate-limit", "0", "--rate-limit-per-ip", "0", "--rate-burst", "1"])
        let connection = try server.connect()
        var batch: [UInt8] = []
        for id in 0..<3000 { batch += Framing.request(funcID: API.read, requestID: UInt32(id), body: messagePack(1)) }
        try connection.send(batch)
        for _ in 0..<3000 { #expect(try connection.readResponse().returnCode == .ok) }
    }

    /// The assignment's agreement (100 RPS per client) on the default flags: a
    /// conforming client sees no errors beside one flooding at 10x and one
    /// opening connections in a loop, each from its own address.
    @Test func conformingClientIsUnaffectedByAbusiveOnes() throws {
        let server = try ServerProcess()
        let port = server.port
        let seconds = 3.0
        let conformingErrors = Mutex<[String]>([])
        let conformingAnswered = Mutex(0)
        let floodRefused = Mutex(0)
        let churned = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 3) { role in
            let deadline = Date().addingTimeInterval(seconds)
            do {
                switch role {
                case 0:  // conforming: 100 requests per second, one at a time
                    let connection = try TestConnection(port: port)
                    var next = Date()
                    while next < deadline {
                        let response = try connection.replace(7, "conforming")
                        if response.returnCode == .ok {
                            conformingAnswered.withLock { $0 += 1 }
                        } else {
                            conformingErrors.withLock { $0.append("code \(response.returnCode)") }
                        }
                        next += 0.01
                        let wait = next.timeIntervalSinceNow
                        if wait > 0 { usleep(UInt32(wait * 1e6)) }
                    }
                case 1:  // flooding: 100-request batches every 100 ms, 1000 per second, from another address
                    let connection = try TestConnection(port: port, source: "127.0.0.2")
                    var batch: [UInt8] = []
                    for id in 0..<100 { batch += Framing.request(funcID: API.read, requestID: UInt32(id), body: messagePack(2)) }
                    while Date() < deadline {
                        try connection.send(batch)
                        for _ in 0..<100 where try connection.readResponse().returnCode == .rateLimited {
                            floodRefused.withLock { $0 += 1 }
                        }
                        usleep(100_000)
                    }
                default:  // churning: connect, one request, close, as fast as possible, from a third address
                    while Date() < deadline {
                        let connection = try TestConnection(port: port, source: "127.0.0.3")
                        _ = try connection.read(3)
                        churned.withLock { $0 += 1 }
                    }
                }
            } catch {
                if role == 0 { conformingErrors.withLock { $0.append("\(error)") } }
            }
        }
        #expect(conformingErrors.withLock { $0 } == [])
        #expect(conformingAnswered.withLock { $0 } >= 250)
        #expect(floodRefused.withLock { $0 } > 0, "the flooding client was never limited")
        #expect(churned.withLock { $0 } > 50)
    }
}

@Suite struct AddressLimitTests {
    @Test func connectionsPerAddressAreLimitedAndCounted() throws {
        let server = try ServerProcess(["--max-connections-per-ip", "2"])
        let first = try server.connect()
        let second = try server.connect()
        #expect(try first.read(0).returnCode == .ok)
        #expect(try second.read(0).returnCode == .ok)
        let third = try TestConnection(port: server.port, timeout: 5)
        #expect([.closed, .reset].contains(third.nextOutcome()))
        // Another address is another client.
        let other = try TestConnection(port: server.port, source: "127.0.0.2")
        #expect(try other.read(0).returnCode == .ok)
        #expect(try server.metric("iprotod_connections_closed_total", ["reason": "over_ip_limit"]) == 1)
        // Closing one frees a place for that address.
        first.reset()
        #expect(eventually {
            guard let again = try? server.connect(timeout: 1), let response = try? again.read(0) else { return false }
            return response.returnCode == .ok
        })
    }
}

@Suite struct MetricsTests {
    @Test func countersMoveWithRequestsAndTheTextPassesPromtool() throws {
        let server = try ServerProcess(["--workers", "2"])
        let connection = try server.connect()
        for _ in 0..<3 { #expect(try connection.read(1).returnCode == .ok) }
        #expect(try connection.call(0x0009_0009).returnCode == .unknownFunction)
        #expect(try connection.call(API.read, [0xc1]).returnCode == .malformedBody)
        #expect(try connection.call(API.switchReadOnly).returnCode == .ok)
        #expect(try connection.replace(1, "x").returnCode == .readOnlyStorage)

        #expect(try server.metric("iprotod_requests_total", ["function": "STORAGE_READ", "code": "0"]) == 3)
        #expect(try server.metric("iprotod_requests_total", ["function": "unknown", "code": "1"]) == 1)
        #expect(try server.metric("iprotod_requests_total", ["function": "STORAGE_REPLACE", "code": "256"]) == 1)
        #expect(try server.metric("iprotod_request_duration_seconds_count", ["function": "STORAGE_READ"]) == 4)
        #expect(try server.metric("iprotod_protocol_errors_total", ["kind": "unknown_function"]) == 1)
        #expect(try server.metric("iprotod_protocol_errors_total", ["kind": "malformed_body"]) == 1)
        #expect(try server.metric("iprotod_storage_state", ["state": "read_only"]) == 1)
        #expect(try server.metric("iprotod_storage_state", ["state": "read_write"]) == 0)
        #expect(try server.metric("iprotod_storage_state_changes_total", ["state": "read_only"]) == 1)
        #expect(try server.metric("iprotod_connections_active") == 1)
        #expect(try server.metric("iprotod_connections_accepted_total") == 1)
        #expect(try server.metric("iprotod_received_bytes_total") > 0)
        #expect(try server.metric("iprotod_workers") == 2)
        #expect(try server.metric("iprotod_build_info") == 1)

        connection.shutdownWrite()
        #expect(connection.nextOutcome() == .closed)
        #expect(eventually { (try? server.metric("iprotod_connections_closed_total", ["reason": "peer"])) == 1 })
        #expect(try server.metric("iprotod_connections_active") == 0)
        #expect(try server.metric("iprotod_buffered_bytes") == 0)
        #expect(try server.metric("iprotod_memory_budget_paused_total") == 0)

        let check = try runPromtool(on: server.scrapeMetrics())
        #expect(check.status == 0, "promtool: \(check.output)")
    }

    @Test func emptyMetricsListenDisablesTheEndpoint() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServerProcess.binaryPath)
        process.arguments = ["--listen", "127.0.0.1:0", "--metrics-listen", ""]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        let firstLine = output.fileHandleForReading.availableData
        #expect(String(decoding: firstLine, as: UTF8.self).hasPrefix("iprotod listening on "))
        #expect(!String(decoding: firstLine, as: UTF8.self).contains("metrics"))
    }

    private func runPromtool(on text: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        process.arguments = ["check", "metrics"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: printed, as: UTF8.self))
    }
}

@Suite struct GracefulShutdownTests {
    /// Standard error on a pipe nobody reads (a log shipper that died): SIGTERM still drains,
    /// writes the final snapshot and exits 0. Fails on 2b8801a: SIGPIPE killed it (status 141).
    @Test func closedStandardErrorDoesNotKillTheServer() throws {
        let directory = NSTemporaryDirectory() + "iprotod-sigpipe-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let errors = Pipe()
        let server = try ServerProcess(["--log-level", "debug", "--data-dir", directory, "--snapshot-interval", "3600"],
                                       standardError: errors.fileHandleForWriting)
        try errors.fileHandleForReading.close()
        let connection = try server.connect()  // logged at debug: the first write into the dead pipe
        #expect(try connection.replace(3, "kept").returnCode == .ok)
        #expect(server.stop() == 0)
        #expect(FileManager.default.fileExists(atPath: directory + "/snapshot"), "no final snapshot")
    }

    /// After SIGTERM a connection keeps answering, with code 8, until the drain grace ends; then EOF.
    @Test func requestsDuringTheDrainGetShuttingDown() throws {
        let server = try ServerProcess(["--rate-limit", "0", "--rate-limit-per-ip", "0"])
        let connection = try server.connect()
        #expect(try connection.read(0).returnCode == .ok)
        let stopped = Date()
        kill(server.process.processIdentifier, SIGTERM)
        var codes: [ReturnCode] = []
        while Date().timeIntervalSince(stopped) < 5 {
            guard (try? connection.send(Framing.request(funcID: API.read, requestID: 1, body: messagePack(0)))) != nil,
                  let response = try? connection.readResponse()
            else { break }
            codes.append(response.returnCode)
            usleep(20_000)
        }
        #expect(codes.contains(.shuttingDown), "codes after SIGTERM: \(codes)")
        #expect(codes.drop { $0 == .ok }.allSatisfy { $0 == .shuttingDown }, "an ok after a shutting-down: \(codes)")
        #expect([.closed, .reset].contains(connection.nextOutcome()))
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0)
        #expect(Date().timeIntervalSince(stopped) < 5)
    }

    /// Pipelined requests in flight at SIGTERM are all answered, in order, each run or refused with code 8.
    @Test func pipelinedRequestsAreAnsweredInOrderThroughTheStop() throws {
        let server = try ServerProcess(["--rate-limit", "0", "--rate-limit-per-ip", "0"])
        let connection = try server.connect()
        var batch: [UInt8] = []
        for id in 0..<20_000 { batch += Framing.request(funcID: API.read, requestID: UInt32(id), body: messagePack(0)) }
        try connection.send(batch)
        kill(server.process.processIdentifier, SIGTERM)
        var answered = 0
        var refused = false
        while let response = try? connection.readResponse() {
            #expect(response.requestID == UInt32(answered))
            if response.returnCode == .shuttingDown { refused = true }
            #expect(response.returnCode == (refused ? .shuttingDown : .ok))
            answered += 1
        }
        #expect(answered == 20_000, "every request received before the close was answered")
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0)
    }

    /// A client that never reads keeps replies queued; the shutdown timeout closes it anyway.
    @Test func unreadRepliesDoNotHoldTheShutdownBeyondItsTimeout() throws {
        let server = try ServerProcess(["--shutdown-timeout", "1.5", "--rate-limit", "0", "--rate-limit-per-ip", "0", "--max-output", "65536"])
        let connection = try TestConnection(port: server.port, receiveBuffer: 4096, sendBuffer: 4096)
        _ = try connection.replace(0, String(repeating: "q", count: 256))
        let frame = Framing.request(funcID: API.read, requestID: 1, body: messagePack(0))
        let stream = [UInt8]((0..<200_000).lazy.flatMap { _ in frame })
        var sent = 0
        var idleRounds = 0
        while sent < stream.count, idleRounds < 200 {  // until the server stops reading
            let n = try connection.sendNonBlocking(stream[sent...])
            sent += n
            idleRounds = n > 0 ? 0 : idleRounds + 1
            if n == 0 { usleep(2000) }
        }
        let stopped = Date()
        #expect(server.stop() == 0)
        let elapsed = Date().timeIntervalSince(stopped)
        #expect(elapsed >= 1.2 && elapsed < 6, "stopped after \(elapsed) s")
    }

    @Test func idleConnectionsDoNotHoldTheShutdownBeyondTheGrace() throws {
        let server = try ServerProcess()
        let connections = try (0..<20).map { _ in try server.connect() }
        let stopped = Date()
        #expect(server.stop() == 0)
        #expect(Date().timeIntervalSince(stopped) < 4)
        for connection in connections { #expect([.closed, .reset].contains(connection.nextOutcome())) }
    }
}
