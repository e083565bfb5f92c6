import IProto
import IProtoTestSupport
import Testing

/// The five functions over TCP against the real binary, in every storage state.
@Suite struct StorageAPITests {
    @Test func readOfAnEmptySlotIsTheEmptyString() throws {
        let server = try ServerProcess()
        let response = try server.connect().read(0)
        #expect(response.returnCode == .ok)
        #expect(response.body == [0xa0])
    }

    @Test func replaceThenReadReturnsTheSameBytes() throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        let replaced = try connection.replace(42, "hello, мир")
        #expect(replaced.returnCode == .ok)
        #expect(replaced.isNil)
        #expect(try connection.read(42).string == "hello, мир")
        #expect(try server.connect().read(42).string == "hello, мир", "another connection sees the write")
    }

    @Test func invalidUTF8IsStoredAndReturnedByteForByte() throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        #expect(try connection.call(API.replace, [0x01, 0xa3, 0xff, 0x00, 0xc1]).returnCode == .ok)
        #expect(try connection.read(1).body == [0xa3, 0xff, 0x00, 0xc1])
    }

    /// Go's msgpack sends []byte as bin: stored as the same bytes, read back as a str.
    /// Refused with code 3 on 2b8801a ("expected string, got binary").
    @Test func binaryValuesAreStoredLikeStrings() throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        #expect(try connection.call(API.replace, messagePack(.int(3), .binary([0x68, 0x69, 0xff]))).returnCode == .ok)
        #expect(try connection.read(3).body == [0xa3, 0x68, 0x69, 0xff])
        let tooLong = try connection.call(API.replace, messagePack(.int(3), .binary([UInt8](repeating: 1, count: 257))))
        #expect(tooLong.returnCode == .tooLong)
        // bin16 and bin32 headers too
        #expect(try connection.call(API.replace, [0x04, 0xc5, 0x00, 0x02, 0x61, 0x62]).returnCode == .ok)
        #expect(try connection.call(API.replace, [0x05, 0xc6, 0x00, 0x00, 0x00, 0x01, 0x63]).returnCode == .ok)
        #expect(try connection.read(4).string == "ab")
        #expect(try connection.read(5).string == "c")
    }

    @Test func arrayBodyFormsAreAccepted() throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        #expect(try connection.call(API.replace, messagePack(.array([.int(9), .string("arr")]))).returnCode == .ok)
        #expect(try connection.call(API.read, messagePack(.array([.int(9)]))).string == "arr")
    }

    @Test(arguments: [[], [0xc0], [0x90]] as [[UInt8]])
    func switchesAcceptEveryNilBody(body: [UInt8]) throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        let response = try connection.call(API.switchReadOnly, body)
        #expect(response.returnCode == .ok)
        #expect(response.isNil)
        #expect(try connection.replace(0, "x").returnCode == .readOnlyStorage)
    }

    @Test func everyFunctionInEveryState() throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        #expect(try connection.replace(5, "v").returnCode == .ok)

        // read-only: reads work, writes fail with 0x100.
        #expect(try connection.call(API.switchReadOnly).returnCode == .ok)
        #expect(try connection.read(5).string == "v")
        let readOnlyWrite = try connection.replace(5, "w")
        #expect(readOnlyWrite.returnCode == .readOnlyStorage)
        #expect(readOnlyWrite.string == "storage is read-only")

        // maintenance: both fail with 0x101.
        #expect(try connection.call(API.switchMaintenance).returnCode == .ok)
        #expect(try connection.read(5).returnCode == .maintenanceStorage)
        #expect(try connection.replace(5, "w").returnCode == .maintenanceStorage)
        #expect(try connection.read(5).string == "storage is in maintenance")

        // Switches work in every state, including the state already in force.
        for target in [API.switchMaintenance, API.switchReadOnly, API.switchReadOnly, API.switchReadWrite, API.switchReadWrite] {
            #expect(try connection.call(target).returnCode == .ok)
        }

        // read-write again: the value survived, writes work.
        #expect(try connection.read(5).string == "v")
        #expect(try connection.replace(5, "w").returnCode == .ok)
        #expect(try connection.read(5).string == "w")
    }

    @Test(arguments: ["read-only", "maintenance"])
    func initialStateFlag(state: String) throws {
        let server = try ServerProcess(["--initial-state", state])
        let connection = try server.connect()
        let expected: ReturnCode = state == "read-only" ? .readOnlyStorage : .maintenanceStorage
        #expect(try connection.replace(0, "x").returnCode == expected)
    }

    @Test func stateIsSharedByAllConnectionsAndWorkers() throws {
        let server = try ServerProcess(["--workers", "2"])
        let connections = try (0..<8).map { _ in try server.connect() }
        #expect(try connections[0].call(API.switchMaintenance).returnCode == .ok)
        for connection in connections { #expect(try connection.read(0).returnCode == .maintenanceStorage) }
    }
}

/// Each error code the server produces, over the wire, with a MessagePack string body.
@Suite struct ErrorCodeTests {
    private func expectError(_ response: TestResponse, _ code: ReturnCode, containing text: String,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.returnCode == code, sourceLocation: sourceLocation)
        let message = response.string
        #expect(message?.contains(text) == true, "message: \(message ?? "not a string")", sourceLocation: sourceLocation)
    }

    @Test func everyErrorCodeLeavesTheConnectionUsable() throws {
        let server = try ServerProcess()
        let c = try server.connect()
        expectError(try c.call(0x0003_0001), .unknownFunction, containing: "unknown function 0x00030001")
        expectError(try c.call(API.read, [0xc1]), .malformedBody, containing: "malformed")
        expectError(try c.call(API.read, [0xa5, 0x68]), .malformedBody, containing: "truncated")
        expectError(try c.call(API.read, messagePack("5")), .badArguments, containing: "expected integer, got string")
        expectError(try c.call(API.read, messagePack(.double(5))), .badArguments, containing: "expected integer")
        expectError(try c.call(API.read, messagePack(5, 6)), .badArguments, containing: "expected 1 argument")
        expectError(try c.call(API.read, []), .badArguments, containing: "expected 1 argument, got 0")
        expectError(try c.call(API.replace, messagePack(5, "a", nil)), .badArguments, containing: "expected 2 arguments")
        expectError(try c.call(API.replace, messagePack(5, 6)), .badArguments, containing: "expected string")
        expectError(try c.call(API.switchReadOnly, messagePack(1)), .badArguments, containing: "expected 0 arguments")
        expectError(try c.read(1000), .outOfRange, containing: "index 1000 is out of range 0...999")
        expectError(try c.read(-1), .outOfRange, containing: "index -1")
        expectError(try c.call(API.read, messagePack(.uint(UInt64.max))), .outOfRange,
                    containing: "index 18446744073709551615 is out of range 0...999")
        expectError(try c.call(API.replace, messagePack(.array([5, "x", nil]))), .badArguments,
                    containing: "expected 2 arguments, got an array of 3")
        expectError(try c.replace(0, String(repeating: "x", count: 257)), .tooLong, containing: "257 bytes exceeds 256")
        expectError(try c.replace(0, String(repeating: "é", count: 129)), .tooLong, containing: "258 bytes")
        #expect(try c.replace(999, String(repeating: "x", count: 256)).returnCode == .ok)
        #expect(try c.read(999).string?.utf8.count == 256)
    }

    @Test func rejectedWritesChangeNothing() throws {
        let server = try ServerProcess()
        let c = try server.connect()
        #expect(try c.replace(3, "original").returnCode == .ok)
        // A valid REPLACE followed by a trailing value must not be half-executed.
        #expect(try c.call(API.replace, messagePack(3, "changed", 1)).returnCode == .badArguments)
        #expect(try c.call(API.replace, messagePack(3, "changed") + [0xc1]).returnCode == .malformedBody)
        #expect(try c.read(3).string == "original")
    }
}
