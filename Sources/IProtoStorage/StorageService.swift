import IProto

// The storage's API table is storage.iproto-api; the plugin generates from it
// the StorageService protocol, the StorageFunction enum, the argument decoding
// in Handlers.registerStorageService(_:) and the client's typed calls.

/// ``Storage`` serves the generated API.
extension Storage: StorageService {
    public func switchReadOnly() throws(IProtoError) { try switchState(to: .readOnly) }
    public func switchReadWrite() throws(IProtoError) { try switchState(to: .readWrite) }
    public func switchMaintenance() throws(IProtoError) { try switchState(to: .maintenance) }
    public func replace(index: Int, value: [UInt8]) throws(IProtoError) { try replace(index, with: value) }
    public func read(index: Int) throws(IProtoError) -> [UInt8] { try read(index) }
}

extension Handlers {
    /// Registers the five storage functions, served by `storage`; with a
    /// journal, replies wait for the changes they acknowledge to be logged,
    /// and a batch the disk refused is answered with
    /// ``IProto/ReturnCode/storageCannotPersist`` (``Storage/commit(worker:)``).
    public mutating func registerStorage(_ storage: Storage) {
        if storage.journal != nil { beforeReplies { worker throws(IProtoError) in try storage.commit(worker: worker) } }
        registerStorageService(storage)
    }
}
