import Foundation
import IProto
import IProtoTestSupport
import Testing

/// --admin-from: who may call the 0x0001xxxx functions.
@Suite struct AdminAccessTests {
    @Test func adminFunctionsFromOutsideTheAllowlistGetPermissionDenied() throws {
        let server = try ServerProcess(["--admin-from", "127.0.0.1/32"])
        let outsider = try TestConnection(port: server.port, source: "127.0.0.2")
        let refused = try outsider.call(API.switchMaintenance)
        #expect(refused.returnCode == .permissionDenied)
        #expect(refused.returnCode.rawValue == 10)
        #expect(refused.string == "ADM_STORAGE_SWITCH_MAINTENANCE is allowed only from --admin-from 127.0.0.1/32; 127.0.0.2 is not")
        #expect(try outsider.read(0).returnCode == .ok, "the switch was not run, and the connection stays usable")
        #expect(try outsider.call(0x0001_00ff).returnCode == .permissionDenied, "the whole 0x0001xxxx range, known or not")
        #expect(try server.metric("iprotod_permission_denied_total") == 2)

        let admin = try TestConnection(port: server.port, source: "127.0.0.1")
        #expect(try admin.call(API.switchMaintenance).returnCode == .ok)
        #expect(try outsider.read(0).returnCode == .maintenanceStorage)
        #expect(try admin.call(API.switchReadWrite).returnCode == .ok)
        #expect(try server.metric("iprotod_permission_denied_total") == 2)
    }

    @Test func theDefaultAllowsLoopbackOnly() throws {
        let server = try ServerProcess()
        #expect(try TestConnection(port: server.port, source: "127.0.0.2").call(API.switchReadOnly).returnCode == .ok)
        #expect(try server.metric("iprotod_permission_denied_total") == 0)
    }

    @Test func anEmptyAllowlistAdmitsNobody() throws {
        let server = try ServerProcess(["--admin-from", ""])
        let connection = try server.connect()
        let refused = try connection.call(API.switchReadOnly)
        #expect(refused.returnCode == .permissionDenied)
        #expect(refused.string == "ADM_STORAGE_SWITCH_READONLY is allowed only from --admin-from (empty); 127.0.0.1 is not")
        #expect(try connection.replace(1, "still writable").returnCode == .ok)
    }

    @Test func anInvalidBlockFailsAtStartup() throws {
        let result = try ServerProcess.run(ServerProcess.binaryPath, ["--listen", "127.0.0.1:0", "--admin-from", "127.0.0.1/32,localhost"])
        #expect(result.status != 0)
        #expect(result.errors.contains("--admin-from must be comma-separated CIDR blocks"), "stderr: \(result.errors)")
        #expect(result.errors.contains("\"localhost\""))
    }
}
