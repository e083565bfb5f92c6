import Testing
@testable import IProto

@Suite struct DispatcherTests {
    struct Unexpected: Error {}

    private let dispatcher: Dispatcher = {
        var handlers = Handlers()
        handlers.register(0x10) { _ in .string("ok") }
        handlers.register(0x11) { _ in throw IProtoError(ReturnCode(rawValue: 0x1234), "custom failure") }
        handlers.register(0x12) { _ in throw Unexpected() }
        handlers.register(0x13) { request in
            var arguments = try request.arguments(1)
            return .int(Int64(try arguments.int()) * 2)
        }
        return Dispatcher(handlers)
    }()

    private func respond(_ funcID: UInt32, _ body: [UInt8] = []) -> (ReturnCode, [UInt8]) {
        var writer = MessagePackWriter()
        let code = dispatcher.respond(to: Request(funcID: funcID, requestID: 9, body: body), into: &writer)
        return (code, writer.bytes)
    }

    @Test func successEncodesTheReturnedValue() {
        #expect(respond(0x10) == (.ok, messagePackBytes(.string("ok"))))
        #expect(respond(0x13, [0x15]) == (.ok, [0x2a]))
    }

    @Test func unknownFunctionNamesTheID() {
        #expect(respond(0x0003_0001) == (.unknownFunction, messagePackBytes(.string("unknown function 0x00030001"))))
    }

    @Test func thrownIProtoErrorKeepsItsCodeAndMessage() {
        #expect(respond(0x11) == (ReturnCode(rawValue: 0x1234), messagePackBytes(.string("custom failure"))))
    }

    @Test func otherErrorsAreInternalErrors() throws {
        let (code, body) = respond(0x12)
        #expect(code == .internalError)
        var reader = MessagePackReader(body)
        #expect(try reader.readString().hasPrefix("internal error"))
    }

    @Test func argumentErrorsDiscardPartialOutput() {
        #expect(respond(0x13, [0xa1, 0x61]).0 == .badArguments)
        #expect(respond(0x13, [0xc1]).0 == .malformedBody)
    }

    @Test func protocolCodesAreStable() {
        let table: [(ReturnCode, UInt32)] = [
            (.ok, 0), (.unknownFunction, 1), (.malformedBody, 2), (.badArguments, 3), (.outOfRange, 4),
            (.tooLong, 5), (.bodyTooLarge, 6), (.rateLimited, 7), (.shuttingDown, 8), (.internalError, 9),
            (.permissionDenied, 10),
        ]
        for (code, raw) in table { #expect(code.rawValue == raw) }
        #expect(ReturnCode.permissionDenied.name == "permission_denied")
    }
}
