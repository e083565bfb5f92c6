import Dispatch
import Synchronization
import IProto
import IProtoStorage
import Testing

@Suite struct StorageStateMachineTests {
    @Test func startsReadWriteAndEmpty() throws {
        let storage = Storage()
        #expect(storage.state == .readWrite)
        for index in [0, 500, 999] { #expect(try storage.read(index) == []) }
    }

    @Test(arguments: StorageState.allCases)
    func initialStateIsConfigurable(state: StorageState) {
        #expect(Storage(state: state).state == state)
    }

    /// Every operation in every state: reads except in maintenance, writes only in read-write.
    @Test(arguments: StorageState.allCases)
    func operationsFollowTheState(state: StorageState) throws {
        let storage = Storage()
        try storage.replace(1, with: Array("before".utf8))
        try storage.switchState(to: state)
        switch state {
        case .readWrite:
            try storage.replace(1, with: Array("after".utf8))
            #expect(try storage.read(1) == Array("after".utf8))
        case .readOnly:
            #expect(throws: IProtoError(.storageReadOnly, "storage is read-only")) { try storage.replace(1, with: [0x61]) }
            #expect(try storage.read(1) == Array("before".utf8))
        case .maintenance:
            #expect(throws: IProtoError(.storageMaintenance, "storage is in maintenance")) { try storage.replace(1, with: [0x61]) }
            #expect(throws: IProtoError(.storageMaintenance, "storage is in maintenance")) { try storage.read(1) }
        }
    }

    @Test func everySwitchWorksFromEveryState() throws {
        let storage = Storage()
        for from in StorageState.allCases {
            for to in StorageState.allCases {
                try storage.switchState(to: from)
                try storage.switchState(to: to)
                #expect(storage.state == to)
            }
        }
    }

    @Test func valuesSurviveStateChanges() throws {
        let storage = Storage()
        try storage.replace(7, with: Array("kept".utf8))
        try storage.switchState(to: .maintenance)
        try storage.switchState(to: .readOnly)
        #expect(try storage.read(7) == Array("kept".utf8))
    }

    @Test(arguments: [-1, 1000, Int.max, Int.min])
    func indicesOutsideTheStorageAreOutOfRange(index: Int) {
        let storage = Storage()
        #expect { try storage.read(index) } throws: { ($0 as? IProtoError)?.code == .outOfRange }
        #expect { try storage.replace(index, with: []) } throws: { ($0 as? IProtoError)?.code == .outOfRange }
    }

    @Test func valueLengthIsCountedInBytes() throws {
        let storage = Storage()
        let exact = [UInt8](repeating: 0x7a, count: 256)
        try storage.replace(999, with: exact)
        #expect(try storage.read(999) == exact)
        #expect { try storage.replace(0, with: exact + [0x7a]) } throws: { ($0 as? IProtoError)?.code == .tooLong }
        let twoByteCharacters = Array(String(repeating: "é", count: 129).utf8)  // 258 bytes, 129 characters
        #expect { try storage.replace(0, with: twoByteCharacters) } throws: { ($0 as? IProtoError)?.code == .tooLong }
    }

    @Test func emptyValueClearsASlot() throws {
        let storage = Storage()
        try storage.replace(3, with: [0x61])
        try storage.replace(3, with: [])
        #expect(try storage.read(3) == [])
    }

    @Test func concurrentReadersNeverSeeATornValue() throws {
        let storage = Storage()
        let a = [UInt8](repeating: 0x41, count: 256)
        let b = [UInt8](repeating: 0x42, count: 256)
        try storage.replace(0, with: a)
        let torn = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for round in 0..<20_000 {
                if worker == 0 {
                    try? storage.replace(0, with: round.isMultiple(of: 2) ? a : b)
                } else if let value = try? storage.read(0), value != a, value != b {
                    torn.withLock { $0 += 1 }
                }
            }
        }
        #expect(torn.withLock { $0 } == 0)
    }
}

@Suite struct StorageServiceTests {
    @Test func registersExactlyTheFiveFunctions() {
        var handlers = Handlers()
        handlers.registerStorage(Storage())
        #expect(handlers.funcIDs == [0x0001_0001, 0x0001_0002, 0x0001_0003, 0x0002_0001, 0x0002_0002])
        #expect(StorageFunction.allCases.map(\.rawValue) == handlers.funcIDs)
    }
}
