import IProtoStorage

/// Conveniences over the storage calls generated from storage.iproto-api
/// (`read(index:)`, `replace(index:value:)`, `switchReadOnly()`…), for text
/// values and state switches by value.
extension IProtoClient {
    /// The string stored at `index`, invalid UTF-8 repaired; `read(index:)` gives the bytes as stored.
    public func read(_ index: Int, timeout: Duration? = nil) async throws(ClientError) -> String {
        String(decoding: try await read(index: index, timeout: timeout), as: UTF8.self)
    }

    /// Stores `value` at `index`.
    public func replace(_ index: Int, with value: String, timeout: Duration? = nil) async throws(ClientError) {
        try await replace(index: index, value: Array(value.utf8), timeout: timeout)
    }

    /// Switches the storage to `state`.
    public func switchState(to state: StorageState, timeout: Duration? = nil) async throws(ClientError) {
        switch state {
        case .readOnly: try await switchReadOnly(timeout: timeout)
        case .readWrite: try await switchReadWrite(timeout: timeout)
        case .maintenance: try await switchMaintenance(timeout: timeout)
        }
    }
}
