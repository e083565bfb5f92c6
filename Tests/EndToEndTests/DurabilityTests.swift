import Foundation
import IProto
import IProtoStorage
import IProtoTestSupport
import Testing

/// iprotod with --data-dir: writes survive restarts, and a pipeline of writes costs one sync.
@Suite struct DurabilityTests {
    private static let replace: UInt32 = 0x0002_0001
    private static let read: UInt32 = 0x0002_0002

    private final class DataDirectory {
        let path = NSTemporaryDirectory() + "iprotod-data-\(UUID().uuidString)"
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    /// 16 REPLACEs written at once: their replies wait for one fdatasync with --fsync batch, 16 with always.
    @Test(arguments: [("batch", 1...2), ("always", 16...16)])
    func pipelinedWritesShareSyncs(fsync: String, syncs: ClosedRange<Int>) throws {
        let directory = DataDirectory()
        let server = try ServerProcess(["--data-dir", directory.path, "--fsync", fsync, "--rate-limit", "0", "--rate-limit-per-ip", "0", "--workers", "1"])
        let syncsBefore = try server.metric("iprotod_wal_syncs_total")  // the new directory's initial state record
        let connection = try server.connect()
        try connection.send((0..<16).flatMap { index in
            Framing.request(funcID: Self.replace, requestID: UInt32(index), body: messagePack(.int(Int64(index)), .string("value \(index)")))
        })
        for index in 0..<16 {
            let response = try connection.readResponse()
            #expect(response.requestID == UInt32(index) && response.header.returnCode == .ok)
        }
        #expect(try server.metric("iprotod_wal_records_total") == 17)
        let written = Int(try server.metric("iprotod_wal_syncs_total") - syncsBefore)
        #expect(syncs.contains(written), "\(written) syncs")
    }

    @Test func writesAndStateSurviveARestart() throws {
        let directory = DataDirectory()
        do {
            let server = try ServerProcess(["--data-dir", directory.path])
            let connection = try server.connect()
            #expect(try connection.call(Self.replace, messagePack(.int(5), .string("kept"))).header.returnCode == .ok)
            #expect(try connection.call(0x0001_0003).header.returnCode == .ok)  // maintenance
            #expect(server.stop() == 0)
        }
        let server = try ServerProcess(["--data-dir", directory.path, "--initial-state", "read-write"])
        let connection = try server.connect()
        #expect(try connection.call(Self.read, messagePack(.int(5))).header.returnCode == .storageMaintenance)
        #expect(try connection.call(0x0001_0002).header.returnCode == .ok)  // read-write
        #expect(try connection.call(Self.read, messagePack(.int(5))).body == messagePack(.string("kept")))
        // The graceful stop wrote a snapshot, and the log before it is gone.
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files.contains("snapshot"))
        #expect(files.filter { $0.hasPrefix("wal-") }.count == 1)
    }

    @Test func unusableDataDirectoryFailsTheStart() throws {
        let run = try ServerProcess.run(ServerProcess.binaryPath, ["--listen", "127.0.0.1:0", "--metrics-listen", "",
                                                                  "--data-dir", "/nonexistent/parent/data"])
        #expect(run.status == 64)
        #expect(run.errors.contains("--data-dir /nonexistent/parent/data: mkdir /nonexistent/parent/data: No such file or directory"))
    }
}
