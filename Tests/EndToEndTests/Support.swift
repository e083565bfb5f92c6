import IProto
import IProtoTestSupport

/// The assignment's func_ids, written out independently of the server's sources.
enum API {
    static let switchReadOnly: UInt32 = 0x0001_0001
    static let switchReadWrite: UInt32 = 0x0001_0002
    static let switchMaintenance: UInt32 = 0x0001_0003
    static let replace: UInt32 = 0x0002_0001
    static let read: UInt32 = 0x0002_0002
}

extension ReturnCode {
    static let readOnlyStorage = ReturnCode(rawValue: 0x100)
    static let maintenanceStorage = ReturnCode(rawValue: 0x101)
}

extension TestConnection {
    func read(_ index: Int) throws -> TestResponse { try call(API.read, messagePack(.int(Int64(index)))) }

    func replace(_ index: Int, _ value: String) throws -> TestResponse {
        try call(API.replace, messagePack(.int(Int64(index)), .string(value)))
    }
}
