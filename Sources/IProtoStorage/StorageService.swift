import IProto

// The storage's API table is storage.iproto-api; the plugin generates from it
// the StorageService protocol, the StorageFunction enum, the argument decoding
// in Handlers.registerStorageService(_:) and the client's typed calls.

/// ``Storage`` serves the generated API.
extension Storage: StorageService {
    public func switchReadOnly() { switchState(to: .readOnly) }
    public func switchReadWrite() { switchState(to: .readWrite) }
    public func switchMaintenance() { switchState(to: .maintenance) }
    public func replace(index: Int, value: [UInt8]) throws(IProtoError) { try replace(index, with: value) }
    public func read(index: Int) throws(IProtoError) -> [UInt8] { try read(index) }
}

extension Handlers {
    /// Registers the five storage functions, served by `storage`; with a
    /// journal, replies wait for the changes they acknowledge to be logged.
    public mutating func registerStorage(_ storage: Storage) {
        if let journal = storage.journal { beforeReplies { journal.commit() } }
        registerStorageService(storage)
    }
}
