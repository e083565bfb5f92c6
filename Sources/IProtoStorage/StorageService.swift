import IProto

/// The assignment's API table: func_ids and the handlers that serve them.
public enum StorageFunction: UInt32, CaseIterable, Sendable {
    /// `<nil>` → `<nil>`: switch to read-only.
    case switchReadOnly = 0x0001_0001
    /// `<nil>` → `<nil>`: switch to read-write.
    case switchReadWrite = 0x0001_0002
    /// `<nil>` → `<nil>`: switch to maintenance.
    case switchMaintenance = 0x0001_0003
    /// `<int><string>` → `<nil>`: store a string at an index.
    case replace = 0x0002_0001
    /// `<int>` → `<string>`: the string at an index.
    case read = 0x0002_0002

    /// The name used in the assignment and in logs.
    public var name: String {
        switch self {
        case .switchReadOnly: "ADM_STORAGE_SWITCH_READONLY"
        case .switchReadWrite: "ADM_STORAGE_SWITCH_READWRITE"
        case .switchMaintenance: "ADM_STORAGE_SWITCH_MAINTENANCE"
        case .replace: "STORAGE_REPLACE"
        case .read: "STORAGE_READ"
        }
    }
}

extension Handlers {
    /// Registers the five storage functions, served by `storage`; with a
    /// journal, replies wait for the changes they acknowledge to be logged.
    public mutating func registerStorage(_ storage: Storage) {
        if let journal = storage.journal { beforeReplies { journal.commit() } }
        for (function, state) in [(StorageFunction.switchReadOnly, StorageState.readOnly),
                                  (.switchReadWrite, .readWrite), (.switchMaintenance, .maintenance)] {
            register(function.rawValue, name: function.name) { request in
                _ = try request.arguments(0)
                storage.switchState(to: state)
                return .nil
            }
        }
        register(StorageFunction.replace.rawValue, name: StorageFunction.replace.name) { request in
            var arguments = try request.arguments(2)
            let index = try arguments.int(in: Storage.indices, name: "index")
            let value = try arguments.stringBytes()
            try storage.replace(index, with: value)
            return .nil
        }
        register(StorageFunction.read.rawValue, name: StorageFunction.read.name) { request in
            var arguments = try request.arguments(1)
            return .stringBytes(try storage.read(try arguments.int(in: Storage.indices, name: "index")))
        }
    }
}
