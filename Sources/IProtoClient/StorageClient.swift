import IProto
import IProtoStorage

/// Typed calls for the storage API; server errors are thrown as
/// ``ClientError/server(_:)`` with the return code (e.g. `.storageReadOnly`).
extension IProtoClient {
    /// The string stored at `index` (invalid UTF-8 is repaired; see ``readBytes(_:)``).
    public func read(_ index: Int, timeout: Duration? = nil) async throws(ClientError) -> String {
        String(decoding: try await readBytes(index, timeout: timeout), as: UTF8.self)
    }

    /// The bytes stored at `index`, exactly as stored.
    public func readBytes(_ index: Int, timeout: Duration? = nil) async throws(ClientError) -> [UInt8] {
        let reply = try await call(StorageFunction.read.rawValue, arguments: [.int(Int64(index))], timeout: timeout)
        var reader = MessagePackReader(reply.body)
        guard let value = try? reader.readStringBytes(), reader.isAtEnd else {
            throw .protocolViolation("STORAGE_READ reply is not one string")
        }
        return Array(value)
    }

    /// Stores `value` at `index`.
    public func replace(_ index: Int, with value: String, timeout: Duration? = nil) async throws(ClientError) {
        _ = try await call(StorageFunction.replace.rawValue, arguments: [.int(Int64(index)), .string(value)], timeout: timeout)
    }

    /// Switches the storage to `state`.
    public func switchState(to state: StorageState, timeout: Duration? = nil) async throws(ClientError) {
        let function: StorageFunction = switch state {
        case .readOnly: .switchReadOnly
        case .readWrite: .switchReadWrite
        case .maintenance: .switchMaintenance
        }
        _ = try await call(function.rawValue, arguments: [], timeout: timeout)
    }
}
