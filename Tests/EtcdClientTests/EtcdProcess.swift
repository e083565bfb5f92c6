import EtcdClient
import Foundation

/// A single-member etcd on loopback for one test, in a temporary directory,
/// tuned (heartbeat 25 ms, election 250 ms) so that a 1 s lease TTL is granted as asked.
final class EtcdProcess {
    let url: String
    private let process = Process()
    private let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("etcd-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let client = try Self.freePort(), peer = try Self.freePort()
        url = "http://127.0.0.1:\(client)"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcd")
        process.arguments = [
            "--name", "test", "--data-dir", directory.appendingPathComponent("data").path,
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", "http://127.0.0.1:\(peer)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peer)",
            "--initial-cluster", "test=http://127.0.0.1:\(peer)",
            "--heartbeat-interval", "25", "--election-timeout", "250", "--log-level", "error",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Started and answering reads. The deadline is generous because the tests of
    /// the whole package run beside it on two cores and may hold the threads that run
    /// this probe for seconds; an etcd that exited (its ports taken meanwhile by
    /// another test) is started again on new ones.
    static func start() async throws -> EtcdProcess {
        for _ in 1...3 {
            let server = try EtcdProcess()
            let probe = EtcdClient(endpoints: [server.url], requestTimeout: .milliseconds(500))
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline, server.process.isRunning {
                if (try? await probe.range(prefix: "/")) != nil { return server }
                try await Task.sleep(for: .milliseconds(50))
            }
            server.stop()
        }
        throw EtcdError.unavailable("etcd did not start in 3 attempts")
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
