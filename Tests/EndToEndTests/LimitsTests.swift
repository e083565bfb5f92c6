import Foundation
import IProto
import IProtoTestSupport
import Testing

/// Every transport limit, hit through the real binary.
@Suite struct LimitsTests {
    @Test func fourGiBBodyLengthIsRejectedWithoutAllocatingIt() throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        // Virtual size, not RSS: an allocation of the announced 4 GiB that is never touched
        // stays out of RSS but not out of the address space.
        let before = server.virtualBytes
        try connection.send([0x02, 0x00, 0x02, 0x00, 0xff, 0xff, 0xff, 0xff, 0x04, 0x03, 0x02, 0x01])
        try connection.send([UInt8](repeating: 0x61, count: 256 * 1024))  // the client keeps sending its "body"
        let response = try connection.readResponse()
        #expect(response.returnCode == .bodyTooLarge)
        #expect(response.requestID == 0x0102_0304)
        #expect(response.header.funcID == API.read)
        #expect(response.string == "body_length 4294967295 exceeds the limit of 65536 bytes")
        #expect(connection.nextOutcome() == .closed)
        #expect(server.virtualBytes - before < 256 << 20, "virtual size grew by \(server.virtualBytes - before) bytes")
        #expect(try server.connect().read(0).returnCode == .ok)
    }

    @Test func announcedBodiesAreNotAllocatedBeforeTheyArrive() throws {
        let server = try ServerProcess(["--max-body", "500000000", "--workers", "1"])
        let probe = try server.connect()
        let before = server.virtualBytes
        let connections = try (0..<20).map { _ in try server.connect() }
        // 400 MB announced; the body then arrives in two parts, the second completing a stashed frame.
        let header: [UInt8] = [0x02, 0x00, 0x02, 0x00, 0x00, 0x84, 0xd7, 0x17, 0x01, 0x00, 0x00, 0x00]
        for connection in connections { try connection.send(header + [UInt8](repeating: 0xa0, count: 100)) }
        for _ in 0..<3 { #expect(try probe.read(0).returnCode == .ok) }  // one worker: the parts above are read by now
        for connection in connections { try connection.send([UInt8](repeating: 0xa0, count: 100)) }
        for _ in 0..<3 { #expect(try probe.read(0).returnCode == .ok) }
        #expect(server.virtualBytes - before < 256 << 20, "virtual size grew by \(server.virtualBytes - before) bytes")
    }

    @Test func maxBodyBoundaryIsExact() throws {
        // index 1 (1 byte) + str16 header (3 bytes) + 256 bytes = a 260-byte body.
        let body = messagePack(1, .string(String(repeating: "m", count: 256)))
        #expect(body.count == 260)
        let atLimit = try ServerProcess(["--max-body", "260"])
        #expect(try atLimit.connect().call(API.replace, body).returnCode == .ok)
        let belowLimit = try ServerProcess(["--max-body", "259"])
        let connection = try belowLimit.connect()
        #expect(try connection.call(API.replace, body).returnCode == .bodyTooLarge)
        #expect(connection.nextOutcome() == .closed)
    }

    @Test func requestsBeforeAnOversizedOneAreStillAnswered() throws {
        let server = try ServerProcess(["--max-body", "100"])
        let connection = try server.connect()
        let good = Framing.request(funcID: API.read, requestID: 1, body: messagePack(1))
        let bad = Framing.request(funcID: API.read, requestID: 2, body: [UInt8](repeating: 0, count: 101))
        try connection.send(good + bad + good)
        #expect(try connection.readResponse().returnCode == .ok)
        #expect(try connection.readResponse().returnCode == .bodyTooLarge)
        #expect(connection.nextOutcome() == .closed)
    }

    @Test func slowlorisIsCutOffByTheReadTimeout() throws {
        let server = try ServerProcess(["--read-timeout", "0.5", "--idle-timeout", "30"])
        let connection = try server.connect(timeout: 0.1)
        let frame = Framing.request(funcID: API.replace, requestID: 1, body: messagePack(1, .string(String(repeating: "z", count: 200))))
        let started = Date()
        var outcome = TestConnection.Outcome.timedOut
        // One byte every 50 ms: bytes keep moving, so only the read timeout can end this.
        for byte in frame {
            guard (try? connection.send([byte])) != nil else { break }
            outcome = connection.nextOutcome()
            if outcome != .timedOut { break }
            usleep(50_000)
        }
        #expect([.closed, .reset].contains(outcome))
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 0.4 && elapsed < 5, "closed after \(elapsed) s")
    }

    @Test func silentConnectionsAreClosedByTheIdleTimeoutAndBusyOnesAreNot() throws {
        let server = try ServerProcess(["--idle-timeout", "0.5"])
        let silent = try server.connect()
        let busy = try server.connect()
        let started = Date()
        for _ in 0..<15 {
            #expect(try busy.read(0).returnCode == .ok)
            usleep(100_000)
        }
        #expect(silent.nextOutcome() == .closed)
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed < 5)
        #expect(try busy.read(0).returnCode == .ok, "a connection with traffic every 100 ms stays open")
    }

    /// Silent for longer than the default idle timeout: a server that ignored the 0 (falling
    /// back to the default) would have closed the connection by then.
    @Test func idleTimeoutZeroDisablesIt() throws {
        let server = try ServerProcess(["--idle-timeout", "0"])
        let wait = Configuration().idleTimeout / .seconds(1) + 2
        let connection = try server.connect(timeout: wait)
        #expect(connection.nextOutcome() == .timedOut)
        #expect(try connection.read(0).returnCode == .ok)
    }

    /// Also with --data-dir, where replies wait for the log's barrier and are sent once per loop iteration.
    @Test(arguments: [false, true])
    func clientThatNeverReadsCannotGrowServerMemory(journaled: Bool) throws {
        let dataDirectory = NSTemporaryDirectory() + "iprotod-limits-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        // No idle timeout: on a loaded machine the paused connection may sit longer than its default.
        let server = try ServerProcess(["--max-output", "65536", "--rate-limit", "0", "--rate-limit-per-ip", "0", "--idle-timeout", "0"]
            + (journaled ? ["--data-dir", dataDirectory] : []))
        // The stream first: building it takes seconds in a debug build, which an open connection would spend idle.
        let frame = Framing.request(funcID: API.read, requestID: 5, body: messagePack(0))  // 13-byte request, 275-byte reply
        let stream = [UInt8]((0..<2_000_000).lazy.flatMap { _ in frame })
        let connection = try TestConnection(port: server.port, receiveBuffer: 16 * 1024, sendBuffer: 16 * 1024)
        _ = try connection.replace(0, String(repeating: "r", count: 256))
        let residentBefore = server.residentBytes
        var sent = 0
        var idleRounds = 0
        while sent < stream.count, idleRounds < 300 {
            let n = try connection.sendNonBlocking(stream[sent...])
            sent += n
            idleRounds = n > 0 ? 0 : idleRounds + 1
            if n == 0 { usleep(2000) }
        }
        #expect(sent < stream.count, "the server kept reading although its replies were not read")
        // Unbounded, the replies to what was sent would take hundreds of MiB.
        #expect(server.residentBytes - residentBefore < 32 << 20, "RSS \(residentBefore) before, \(server.residentBytes) after")
        // Meanwhile other clients are served as usual.
        #expect(try server.connect().read(0).string?.count == 256)
        // Reading lets the server resume: every complete request sent is answered.
        for _ in 0..<(sent / frame.count) {
            let response = try connection.readResponse()
            guard response.returnCode == .ok, response.body.count == 259 else {
                Issue.record("unexpected reply \(response.header)")
                return
            }
        }
    }

    @Test func connectionsPastTheLimitAreClosedAtOnce() throws {
        let server = try ServerProcess(["--max-connections", "3"])
        let admitted = try (0..<3).map { _ in try server.connect() }
        for connection in admitted { #expect(try connection.read(0).returnCode == .ok) }
        let rejected = try server.connect(timeout: 5)
        #expect([.closed, .reset].contains(rejected.nextOutcome()))
        for connection in admitted { #expect(try connection.read(0).returnCode == .ok) }
        admitted[0].reset()
        #expect(eventually {
            guard let late = try? server.connect(timeout: 1), let response = try? late.read(0) else { return false }
            return response.returnCode == .ok
        })
    }

    @Test func abruptClientsDoNotDisturbTheServer() throws {
        // The rounds' floods come from one address; only the survival of the server is measured here.
        let server = try ServerProcess(["--workers", "2", "--rate-limit-per-ip", "0"])
        for round in 0..<20 {
            let connection = try server.connect()
            switch round % 4 {
            case 0:  // half a header, then RST
                try connection.send([0x02, 0x00, 0x02])
                connection.reset()
            case 1:  // half a body, then FIN
                try connection.send(Framing.request(funcID: API.read, requestID: 1, body: messagePack(1)).dropLast(1).map { $0 })
                connection.shutdownWrite()
            case 2:  // many requests, then RST without reading the replies
                let frame = Framing.request(funcID: API.read, requestID: 1, body: messagePack(1))
                try connection.send([UInt8]((0..<5000).lazy.flatMap { _ in frame }))
                connection.reset()
            default:  // requests then half-close: every reply still arrives, then the server closes
                let frame = Framing.request(funcID: API.read, requestID: 9, body: messagePack(1))
                try connection.send(frame + frame)
                connection.shutdownWrite()
                #expect(try connection.readResponse().requestID == 9)
                #expect(try connection.readResponse().requestID == 9)
                #expect(connection.nextOutcome() == .closed)
            }
        }
        #expect(server.process.isRunning)
        #expect(try server.connect().replace(2, "alive").returnCode == .ok)
    }

    /// Past the open-file limit, accept() fails and clients wait in the kernel's
    /// queue: iprotod says so at start and in the log, and counts it. The hard
    /// limit is low too, so raising the soft one cannot help.
    @Test func runningOutOfFileDescriptorsIsLoggedAndCounted() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("iprotod-fd-\(UUID()).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let server = try ServerProcess(["--workers", "1"], log: log,
                                       launcher: ["/bin/bash", "-c", "ulimit -n 64 && exec \"$@\"", "bash"])
        func logLines() -> [Substring] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        #expect(eventually { logLines().contains { $0.contains("--max-connections plus a reserve exceeds the open-file limit")
                && $0.contains("max_connections=1024") && $0.contains("open_file_limit=64") } }, "\(logLines())")
        let clients = try (0..<80).map { _ in try server.connect() }  // the kernel completes them all; iprotod cannot take them all
        // Throttled: the first line, then one a second with what it held back.
        #expect(eventually { logLines().contains { $0.contains("accept failed") && $0.contains("suppressed=") } }, "\(logLines())")
        let errorLines = logLines().filter { $0.contains("accept failed") }
        #expect(errorLines.first?.contains("error=Too many open files") == true, "\(errorLines)")
        for client in clients { client.shutdownWrite() }  // frees the server's descriptors for the metrics scrape
        #expect(eventually { (try? server.metric("iprotod_connections_active")) == 0 })
        let counted = try server.metric("iprotod_accept_errors_total")
        #expect(counted > Double(errorLines.count), "\(counted) errors, \(errorLines.count) lines")
        #expect(try server.connect().read(0).returnCode == .ok)
    }

    @Test func theSoftOpenFileLimitIsRaisedToTheHardOne() throws {
        let server = try ServerProcess(launcher: ["/bin/bash", "-c", "ulimit -S -n 100 && exec \"$@\"", "bash"])
        let limits = try String(contentsOfFile: "/proc/\(server.process.processIdentifier)/limits", encoding: .utf8)
        let line = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let fields = line.split(separator: " ")
        #expect(fields.count >= 5 && fields[3] == fields[4] && fields[3] != "100", "\(line)")
    }
}
