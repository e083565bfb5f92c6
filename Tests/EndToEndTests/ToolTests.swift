import IProtoTestSupport
import Testing

/// The `iproto` command-line client against the real server.
@Suite struct ToolTests {
    private func iproto(_ server: ServerProcess, _ arguments: String...) throws -> (status: Int32, output: String, errors: String) {
        try ServerProcess.run(ServerProcess.siblingPath("iproto"), arguments + ["--port", "\(server.port)"])
    }

    @Test func callAndStateSubcommands() throws {
        let server = try ServerProcess()
        #expect(try iproto(server, "call", "replace", "5", "hello world") == (0, "ok\n", ""))
        #expect(try iproto(server, "call", "read", "5") == (0, "hello world\n", ""))
        #expect(try iproto(server, "state", "read-only") == (0, "ok\n", ""))
        let refused = try iproto(server, "call", "replace", "5", "x")
        #expect(refused.status == 1)
        #expect(refused.errors == "iproto: server error 256: storage is read-only\n")
        #expect(try iproto(server, "state", "maintenance").status == 0)
        #expect(try iproto(server, "call", "read", "5").errors == "iproto: server error 257: storage is in maintenance\n")
        #expect(try iproto(server, "state", "read-write").status == 0)
        #expect(try iproto(server, "call", "read", "1000").errors == "iproto: server error 4: index 1000 is out of range 0...999\n")
    }

    @Test func rawPrintsHexAndDecodedValue() throws {
        let server = try ServerProcess()
        #expect(try iproto(server, "raw", "0x00020001", "05 a2 68 69").status == 0)
        let read = try iproto(server, "raw", "0x00020002", "05")
        #expect(read.status == 0)
        #expect(read.output == "return_code 0 (ok)\nbody a2 68 69\nvalue \"hi\"\n")
        let unknown = try iproto(server, "raw", "196609", "")  // 0x00030001 in decimal
        #expect(unknown.status == 1)
        #expect(unknown.output.hasPrefix("return_code 1 (unknown_function)\n"))
        #expect(unknown.output.hasSuffix("value \"unknown function 0x00030001\"\n"))
    }

    @Test func badInputAndNoServerFailClearly() throws {
        let server = try ServerProcess()
        let badHex = try iproto(server, "raw", "0x00020002", "0g")
        #expect(badHex.status != 0)
        #expect(badHex.errors.contains("HEXBODY must be pairs of hex digits"))
        let badState = try iproto(server, "state", "broken")
        #expect(badState.status != 0)
        #expect(badState.errors.contains("read-only"))
        let nobody = try ServerProcess.run(ServerProcess.siblingPath("iproto"), ["call", "read", "1", "--port", "1"])
        #expect(nobody.status == 1)
        #expect(nobody.errors.hasPrefix("iproto: cannot connect: 127.0.0.1:1: Connection refused"))
    }
}
