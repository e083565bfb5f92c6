import Foundation
import IProto
import IProtoClient
import IProtoStorage
import IProtoTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A port that accepts connections (the kernel's backlog) but never answers.
private typealias SilentListener = LoopbackListener

@Suite struct ClientTests {
    @Test func typedStorageCallsAndMappedErrors() async throws {
        let server = try ServerProcess()
        let client = IProtoClient(host: "127.0.0.1", port: server.port)
        try await client.replace(5, with: "hello, мир")
        #expect(try await client.read(5) == "hello, мир")
        #expect(try await client.read(6) == "")
        try await client.switchState(to: .readOnly)
        await #expect(throws: ClientError.server(IProtoError(.storageReadOnly, "storage is read-only"))) {
            try await client.replace(5, with: "no")
        }
        try await client.switchState(to: .maintenance)
        do {
            _ = try await client.read(5)
            Issue.record("read succeeded in maintenance")
        } catch {
            #expect(error.returnCode == .storageMaintenance)
        }
        try await client.switchState(to: .readWrite)
        do {
            _ = try await client.read(1000)
            Issue.record("read of index 1000 succeeded")
        } catch {
            #expect(error.returnCode == .outOfRange)
        }
        // The raw call returns any reply as it is.
        let unknown = try await client.call(0x0009_0009, body: [])
        #expect(unknown.returnCode == .unknownFunction)
        #expect(unknown.string == "unknown function 0x00090009")
    }

    @Test func manyCallsInFlightShareOneConnection() async throws {
        let server = try ServerProcess(["--rate-limit", "0", "--rate-limit-per-ip", "0"])
        let client = IProtoClient(host: "127.0.0.1", port: server.port)
        let values = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for index in 0..<1000 {
                group.addTask {
                    try await client.replace(index, with: "v\(index)")
                    return (index, try await client.read(index))
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(values.count == 1000)
        #expect(values.allSatisfy { $0.value == "v\($0.key)" })
        #expect(try server.metric("iprotod_connections_accepted_total") == 1)
    }

    @Test func thePoolSpreadsCallsOverItsConnections() async throws {
        let server = try ServerProcess(["--rate-limit", "0", "--rate-limit-per-ip", "0"])
        var configuration = ClientConfiguration()
        configuration.connections = 4
        let client = IProtoClient(host: "127.0.0.1", port: server.port, configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<100 { group.addTask { _ = try await client.read(index) } }
            try await group.waitForAll()
        }
        #expect(try server.metric("iprotod_connections_accepted_total") == 4)
    }

    @Test func aCallWithoutReplyTimesOut() async throws {
        let silent = try SilentListener()
        let client = IProtoClient(host: "127.0.0.1", port: silent.port)
        let started = ContinuousClock.now
        await #expect(throws: ClientError.timedOut) { try await client.read(1, timeout: .milliseconds(200)) }
        // No upper bound here: blocking tests beside this one can hold every thread of the
        // cooperative pool for seconds before this task resumes. The one below measures it.
        #expect(ContinuousClock.now - started >= .milliseconds(150))
    }

    /// The same timeout, measured where no other test shares the threads: in the `iproto`
    /// process, whose call must fail within 3 s of its 200 ms timeout (a mutant that never
    /// times out waits for the silent server forever).
    @Test func theCommandLineCallTimesOutOnTime() throws {
        let silent = try SilentListener()
        let started = ContinuousClock.now
        let result = try ServerProcess.run(ServerProcess.siblingPath("iproto"),
                                           ["call", "read", "1", "--port", "\(silent.port)", "--timeout", "0.2"])
        let elapsed = ContinuousClock.now - started
        #expect(result.status == 1)
        #expect(result.errors.contains("timed out"), "\(result.errors)")
        #expect(elapsed >= .milliseconds(150) && elapsed < .seconds(3), "\(elapsed)")
    }

    @Test func cancellingTheTaskCancelsTheCall() async throws {
        let silent = try SilentListener()
        let client = IProtoClient(host: "127.0.0.1", port: silent.port)
        let call = Task { try await client.read(1, timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(100))
        let started = ContinuousClock.now
        call.cancel()
        await #expect(throws: ClientError.cancelled) { try await call.value }
        #expect(ContinuousClock.now - started < .seconds(25), "well before the call's own 30 s timeout")
    }

    @Test func refusedConnectionsFailAndTheClientReconnectsAfterARestart() async throws {
        var first: ServerProcess? = try ServerProcess()
        let port = first!.port
        let client = IProtoClient(host: "127.0.0.1", port: port)
        try await client.replace(1, with: "before")
        #expect(first!.stop() == 0)
        first = nil
        do {
            _ = try await client.read(1)
            Issue.record("a call succeeded with no server")
        } catch {
            #expect([.connectionClosed, .timedOut].contains(error) || "\(error)".contains("cannot connect"), "\(error)")
        }
        let second = try ServerProcess(["--listen", "127.0.0.1:\(port)"])
        #expect(second.port == port)
        // Backoff after failures is bounded, so a call soon gets through again.
        var answered = false
        for _ in 0..<100 where !answered {
            answered = (try? await client.read(1)) != nil
            if !answered { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(answered)
        #expect(try await client.read(1) == "", "a new process has a new, empty storage")
    }

    @Test func connectingToNothingIsAConnectionFailure() async throws {
        let silent = try SilentListener()
        let port = silent.port
        _ = consume silent  // the port is now closed
        let client = IProtoClient(host: "127.0.0.1", port: port)
        do {
            _ = try await client.read(1)
            Issue.record("a call succeeded with no server")
        } catch {
            guard case .connectionFailed = error else { Issue.record("\(error)"); return }
        }
    }
}
