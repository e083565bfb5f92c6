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

    func mirror(message: MessagePackValue) throws(IProtoError) -> MessagePackValue { message }

    func gather(items: [MessagePackValue?], extra: MessagePackValue?) throws(IProtoError)
        -> (items: [MessagePackValue?], extra: MessagePackValue?)
    {
        (items, extra)
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

    /// A `value` argument comes back exactly as sent: its kinds (str stays
    /// str, bin stays bin, also when a map holds them) and its bytes, invalid
    /// UTF-8 included; over its limit it is refused.
    @Test func valuesComeBackAsSent() async throws {
        try await withToolbox { client async throws in
            let invalidUTF8: [UInt8] = [0x68, 0xff, 0xc3, 0x28, 0x80]  // 'h', a stray byte, a broken sequence
            let map: MessagePackValue = .map([
                MessagePackPair(.stringBytes(Array("name".utf8)), .stringBytes(invalidUTF8)),
                MessagePackPair(.uint(1), .binary([0x00, 0xff])),
                MessagePackPair(.binary([0x01]), .array([.nil, .bool(true), .int(-5), .double(0.5), .map([])])),
            ])
            for value in [map, .stringBytes(invalidUTF8), .binary([0xff, 0x00, 0xfe]), .binary([])] {
                #expect(try await client.mirror(message: value) == value)
            }
            // Kinds and bytes on the wire too, not only after decoding.
            let reply = try await client.call(ToolboxFunction.mirror.rawValue, body: messagePack([.stringBytes(invalidUTF8)]))
            #expect(reply.returnCode == .ok && reply.body == [0xa5] + invalidUTF8)
            let binary = try await client.call(ToolboxFunction.mirror.rawValue, body: messagePack([.binary([0xff])]))
            #expect(binary.body == [0xc4, 0x01, 0xff])
            // An array value, even of one element, is the value, not the array body form.
            #expect(try await client.mirror(message: .array([.uint(7)])) == .array([.uint(7)]))
            #expect(try await client.mirror(message: .array([])) == .array([]))
            // A 64-byte value fits, a 65-byte one does not: a str of 62 bytes is 2 bytes of header and 62 of bytes.
            let fits = MessagePackValue.stringBytes(Array(repeating: 0x61, count: 62))
            #expect(try await client.mirror(message: fits) == fits)
            await #expect(throws: ClientError.server(IProtoError(.tooLong, "message of 65 bytes exceeds 64 bytes"))) {
                try await client.mirror(message: .stringBytes(Array(repeating: 0x61, count: 63)))
            }
            // In the array body form, the value's own bytes count: 1 of array header, 2 + 62 of bin.
            #expect(try await refusal(client, .mirror, .array([.array([.binary(Array(repeating: 0, count: 62))])]))
                == IProtoError(.tooLong, "message of 65 bytes exceeds 64 bytes"))
            let deep = (0..<33).reduce(MessagePackValue.nil) { inner, _ in .array([inner]) }
            #expect(try await refusal(client, .mirror, .array([deep]))
                == IProtoError(.badArguments, "message nests containers deeper than 32 levels"))
        }
    }

    /// `[value?]` and `value?`: a nil element or value is `Optional.none`, not
    /// `.some(MessagePackValue.nil)` (a `nil` literal could be either).
    @Test func optionalValuesAndArraysOfThem() async throws {
        try await withToolbox { client async throws in
            let items: [MessagePackValue?] = [.stringBytes([0xff]), .none, .array([.binary([1])])]
            let gathered = try await client.gather(items: items, extra: .map([MessagePackPair(.uint(1), .nil)]))
            #expect(gathered.items == items)
            #expect(gathered.extra == .map([MessagePackPair(.uint(1), .nil)]))
            let empty = try await client.gather(items: [], extra: .none)
            #expect(empty.items.isEmpty && empty.extra == MessagePackValue?.none)
            // What the server decoded: a sent nil arrives as none, and goes back as nil.
            let reply = try await client.call(ToolboxFunction.gather.rawValue, body: messagePack([.array([.nil]), .nil]))
            #expect(reply.body == messagePack([.array([.array([.nil]), .nil])]))
            #expect(try await refusal(client, .gather, .array([1, 2, 3, 4, 5]), nil)
                == IProtoError(.tooLong, "items of 5 elements exceeds 4 elements"))
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
