import IProto
import IProtoClient
import IProtoTestSupport
import Testing

/// The toolbox.iproto-api service, implemented plainly: the generated code does the protocol work.
private struct Toolbox: ToolboxService {
    func echo(text: String) throws(IProtoError) -> String { text }

    func sum(numbers: [Int]) throws(IProtoError) -> Int { numbers.reduce(0, +) }

    func describe(flag: Bool, count: UInt, ratio: Double, label: String?, data: [UInt8], raw: [UInt8])
        throws(IProtoError) -> (summary: String, total: UInt)
    {
        ("\(flag) \(ratio) \(label ?? "none") \(data) \(raw)", count + UInt(data.count))
    }

    func reset() throws(IProtoError) {}

    func words(text: String?) throws(IProtoError) -> [String]? {
        text.map { $0.split(separator: " ").map(String.init) }
    }

    func fail(code: UInt) throws(IProtoError) {
        throw IProtoError(ReturnCode(rawValue: ReturnCode.firstServiceCode + UInt32(code)), "failed with \(code)")
    }
}

@Suite struct ServiceTests {
    /// Runs `body` against a server of the generated Toolbox registration on port 0.
    private func withToolbox(_ body: (IProtoClient) async throws -> Void) async throws {
        var handlers = Handlers()
        handlers.registerToolboxService(Toolbox())
        let server = try Server(configuration: .init(host: "127.0.0.1", port: 0), handlers: handlers)
        try server.start()  // serving now, whenever the run task gets a thread of the cooperative pool
        let running = Task { try await server.run() }
        let client = IProtoClient(host: "127.0.0.1", port: server.port)
        do {
            try await body(client)
        } catch {
            running.cancel()
            throw error
        }
        client.close()
        running.cancel()
        try await running.value
    }

    @Test func generatedClientCallsGeneratedHandlers() async throws {
        try await withToolbox { client async throws in
            #expect(try await client.echo(text: "héllo") == "héllo")
            #expect(try await client.sum(numbers: [1, -2, 100]) == 99)
            // A lone one-element array argument: the client must send it in the array body form.
            #expect(try await client.sum(numbers: [7]) == 7)
            #expect(try await client.sum(numbers: []) == 0)
            let described = try await client.describe(flag: true, count: 3, ratio: 0.5, label: nil, data: [1, 2], raw: [0xff])
            #expect(described.summary == "true 0.5 none [1, 2] [255]")
            #expect(described.total == 5)
            #expect(try await client.describe(flag: false, count: 0, ratio: -1, label: "x", data: [], raw: []).summary
                == "false -1.0 x [] []")
            try await client.reset()
            #expect(try await client.words(text: "a bc d") == ["a", "bc", "d"])
            #expect(try await client.words(text: nil) == nil)
            await #expect(throws: ClientError.server(IProtoError(ReturnCode(rawValue: 0x102), "failed with 2"))) {
                try await client.fail(code: 2)
            }
        }
    }

    @Test func bothBodyFormsAreAccepted() async throws {
        try await withToolbox { client async throws in
            for body in [messagePack("hi"), messagePack(.array(["hi"]))] {
                let reply = try await client.call(ToolboxFunction.echo.rawValue, body: body)
                #expect(reply.returnCode == .ok && reply.string == "hi")
            }
            let arguments: [MessagePackValue] = [true, 3, .double(0.5), "label", .binary([1]), .stringBytes([2])]
            for body in [messagePack(arguments), messagePack(.array(arguments))] {
                let reply = try await client.call(ToolboxFunction.describe.rawValue, body: body)
                #expect(reply.returnCode == .ok)
                #expect(reply.body == messagePack(.array(["true 0.5 label [1] [2]", .uint(4)])))
            }
            for body in [[], messagePack(nil), messagePack(.array([]))] {
                #expect(try await client.call(ToolboxFunction.reset.rawValue, body: body).returnCode == .ok)
            }
        }
    }

    @Test func wrongArgumentsAreRefusedWithTheirCodes() async throws {
        try await withToolbox { client async throws in
            #expect(try await refusal(client, .echo, "a", "b") == IProtoError(.badArguments, "expected 1 argument, got 2 values"))
            #expect(try await refusal(client, .describe, true, 3) == IProtoError(.badArguments, "expected 6 arguments, got 2 values"))
            #expect(try await refusal(client, .reset, 1) == IProtoError(.badArguments, "expected 0 arguments, got 1 value"))
            #expect(try await refusal(client, .echo, 5) == IProtoError(.badArguments, "argument 1: expected string, got integer"))
            #expect(try await refusal(client, .sum, .array([1, "2"])) == IProtoError(.badArguments, "argument 1: expected integer, got string"))
            #expect(try await refusal(client, .describe, true, -1, .double(0), nil, .binary([]), .stringBytes([]))
                == IProtoError(.outOfRange, "argument 2: -1 is negative"))
            #expect(try await refusal(client, .echo, "ninebytes") == IProtoError(.tooLong, "text of 9 bytes exceeds 8 bytes"))
            #expect(try await refusal(client, .describe, true, 1, .double(0), nil, .binary([1, 2, 3, 4, 5]), .stringBytes([]))
                == IProtoError(.tooLong, "data of 5 bytes exceeds 4 bytes"))
            #expect(try await refusal(client, .sum, .array([1, 2, 3, 4, 5])) == IProtoError(.tooLong, "numbers of 5 elements exceeds 4 elements"))
            #expect(try await refusal(client, .sum, .array([1, 101])) == IProtoError(.outOfRange, "argument 1: 101 is out of range -100...100"))
        }
    }
}

/// The return code and message of calling `function` with `values` one after another.
private func refusal(_ client: IProtoClient, _ function: ToolboxFunction, _ values: MessagePackValue...) async throws -> IProtoError {
    let reply = try await client.call(function.rawValue, body: messagePack(values))
    return IProtoError(reply.returnCode, reply.string ?? "")
}

/// The MessagePack encoding of `values`, one after another.
private func messagePack(_ values: [MessagePackValue]) -> [UInt8] {
    var writer = MessagePackWriter()
    for value in values { writer.write(value) }
    return writer.bytes
}
