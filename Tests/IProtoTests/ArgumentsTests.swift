import Testing
@testable import IProto

@Suite struct ArgumentsTests {
    private func request(_ body: [UInt8]) -> Request { Request(funcID: 1, requestID: 1, body: body) }

    @Test func valuesOneAfterAnother() throws {
        var arguments = try request([0x05, 0xa2, 0x68, 0x69]).arguments(2)
        #expect(try arguments.int() == 5)
        #expect(try arguments.string() == "hi")
    }

    @Test func oneArrayOfExactlyTheArguments() throws {
        var arguments = try request([0x92, 0x05, 0xa2, 0x68, 0x69]).arguments(2)
        #expect(try arguments.int() == 5)
        #expect(try arguments.string() == "hi")
        var single = try request([0x91, 0x07]).arguments(1)
        #expect(try single.int() == 7)
    }

    @Test(arguments: [[], [0xc0], [0x90]] as [[UInt8]])
    func nilBodies(body: [UInt8]) throws {
        _ = try request(body).arguments(0)
    }

    @Test(arguments: [
        ([0x05, 0xa2, 0x68, 0x69, 0x01], 2),  // a trailing value
        ([0x05], 2),                          // a missing value
        ([0x93, 0x05, 0xa0, 0xc0], 2),        // an array of the wrong size
        ([0x01], 0),                          // a value where none is expected
        ([0xc0, 0xc0], 0),
    ] as [([UInt8], Int)])
    func wrongCountIsBadArguments(body: [UInt8], count: Int) {
        #expect { try request(body).arguments(count) } throws: { ($0 as? IProtoError)?.code == .badArguments }
    }

    @Test(arguments: [[0x05, 0xc1], [0x05, 0xa5, 0x68], [0xdd, 0xff, 0xff, 0xff, 0xff]] as [[UInt8]])
    func invalidMessagePackIsMalformed(body: [UInt8]) {
        #expect { try request(body).arguments(2) } throws: { ($0 as? IProtoError)?.code == .malformedBody }
    }

    @Test func wrongTypeNamesTheArgument() throws {
        var arguments = try request([0xa1, 0x35]).arguments(1)
        #expect(throws: IProtoError(.badArguments, "argument 1: expected integer, got string")) { try arguments.int() }
    }

    @Test func integerRangeAndWidth() throws {
        var inRange = try request([0xcd, 0x03, 0xe7]).arguments(1)
        #expect(try inRange.int(in: 0...999) == 999)
        var outOfRange = try request([0xcd, 0x03, 0xe8]).arguments(1)
        #expect { try outOfRange.int(in: 0...999) } throws: { ($0 as? IProtoError)?.code == .outOfRange }
        var negative = try request([0xff]).arguments(1)
        #expect { try negative.int(in: 0...999) } throws: { ($0 as? IProtoError)?.code == .outOfRange }
        var huge = try request([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).arguments(1)
        #expect { try huge.int() } throws: { ($0 as? IProtoError)?.code == .outOfRange }
    }

    @Test func stringLengthLimitCountsBytes() throws {
        let body = messagePackBytes(.string("ééé"))  // 6 bytes, 3 characters
        var fits = try request(body).arguments(1)
        #expect(try fits.string(maxBytes: 6) == "ééé")
        var tooLong = try request(body).arguments(1)
        #expect { try tooLong.string(maxBytes: 5) } throws: { ($0 as? IProtoError)?.code == .tooLong }
    }

    @Test func lengthErrorsUseTheGivenName() throws {
        var arguments = try request(messagePackBytes(.string("abc")) + messagePackBytes(.binary([1, 2]))).arguments(2)
        #expect(throws: IProtoError(.tooLong, "value of 3 bytes exceeds 2 bytes")) { try arguments.stringBytes(maxBytes: 2, name: "value") }
        #expect(throws: IProtoError(.tooLong, "argument 2: binary of 2 bytes exceeds 1 bytes")) { try arguments.binary(maxBytes: 1) }
    }

    @Test func unsignedIntegers() throws {
        var arguments = try request([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).arguments(2)
        #expect(try arguments.uint() == UInt.max)
        #expect(throws: IProtoError(.outOfRange, "argument 2: -1 is negative")) { try arguments.uint() }
    }

    @Test func optionalValues() throws {
        var arguments = try request([0xc0, 0x05]).arguments(2)
        #expect(try arguments.skipNil())
        #expect(try !arguments.skipNil())
        #expect(try arguments.int() == 5)
    }

    @Test func arraysAreReadElementByElement() throws {
        // [[1, 2], []] then "x": nested elements do not count as arguments.
        var arguments = try request([0x92, 0x92, 0x01, 0x02, 0x90, 0xa1, 0x78]).arguments(2)
        #expect(try arguments.arrayCount() == 2)
        #expect(try arguments.arrayCount() == 2)
        #expect(try arguments.int() == 1)
        #expect(try arguments.int() == 2)
        #expect(try arguments.arrayCount() == 0)
        #expect(try arguments.string() == "x")
        var tooMany = try request([0x93, 0x01, 0x02, 0x03]).arguments(1)
        #expect(throws: IProtoError(.tooLong, "ids of 3 elements exceeds 2 elements")) { try tooMany.arrayCount(maxCount: 2, name: "ids") }
        var element = try request([0x92, 0x01, 0xa1, 0x78]).arguments(1)
        _ = try element.arrayCount()
        _ = try element.int()
        #expect(throws: IProtoError(.badArguments, "argument 1: expected integer, got string")) { try element.int() }
    }

    @Test func valuesWithoutTheArrayForm() throws {
        var array = try Arguments(values: [0x91, 0x05], count: 1)  // one array, not the array form
        #expect(try array.arrayCount() == 1)
        #expect(try array.int() == 5)
        #expect(throws: IProtoError(.badArguments, "expected 1 value, got 2")) { try Arguments(values: [0x01, 0x02], count: 1) }
        #expect { try Arguments(values: [0xc1], count: 1) } throws: { ($0 as? IProtoError)?.code == .malformedBody }
    }

    @Test func readingPastTheDeclaredCountIsAnInternalError() throws {
        var arguments = try request([0x01]).arguments(1)
        _ = try arguments.int()
        #expect { try arguments.int() } throws: { ($0 as? IProtoError)?.code == .internalError }
    }

    @Test func valueReadsEveryKindAsSent() throws {
        let body: [UInt8] = [
            0x84,                    // a map of 4 pairs
            0xa1, 0x73, 0xa3, 0x68, 0xff, 0xc3,  // "s": a str of invalid UTF-8
            0xc4, 0x01, 0x62, 0xc4, 0x02, 0x00, 0xff,  // bin "b": bin 00 ff
            0x05, 0xd0, 0x05,        // 5 (fixint): 5 (int 8)
            0xc0, 0x94, 0xc3, 0xff, 0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0, 0x90,  // nil: [true, -1, 0.5, []]
        ]
        var arguments = try request(body).arguments(1)
        #expect(try arguments.value() == .map([
            MessagePackPair(.stringBytes([0x73]), .stringBytes([0x68, 0xff, 0xc3])),
            MessagePackPair(.binary([0x62]), .binary([0x00, 0xff])),
            MessagePackPair(.uint(5), .int(5)),
            MessagePackPair(.nil, .array([.bool(true), .int(-1), .double(0.5), .array([])])),
        ]))
    }

    @Test func valueOfAStringKeepsInvalidUTF8() throws {
        var arguments = try request([0xa3, 0xff, 0xfe, 0x41, 0xc4, 0x00]).arguments(2)
        #expect(try arguments.value() == .stringBytes([0xff, 0xfe, 0x41]))
        #expect(try arguments.value() == .binary([]))
    }

    @Test func valueSizeLimitCountsTheWholeEncoding() throws {
        let body = messagePackBytes(.array([.stringBytes([1, 2, 3]), .uint(300)]))  // 1 + 4 + 3 bytes
        #expect(body.count == 8)
        // The lone array is the array form: wrap it so that it is the argument itself.
        var fits = try request([0x91] + body).arguments(1)
        #expect(try fits.value(maxBytes: 8) == .array([.stringBytes([1, 2, 3]), .uint(300)]))
        var over = try request([0x91] + body).arguments(1)
        #expect(throws: IProtoError(.tooLong, "doc of 8 bytes exceeds 7 bytes")) { try over.value(maxBytes: 7, name: "doc") }
        var unnamed = try request([0x01] + body).arguments(2)
        #expect(try unnamed.value(maxBytes: 1) == .uint(1))
        #expect(throws: IProtoError(.tooLong, "argument 2: value of 8 bytes exceeds 7 bytes")) { try unnamed.value(maxBytes: 7) }
    }

    /// `depth` arrays nested around a nil, sent as the one argument (inside the array form).
    private func nested(_ depth: Int) -> [UInt8] {
        [0x91] + Array(repeating: 0x91, count: depth) + [0xc0]
    }

    @Test func valueNestingIsBounded() throws {
        let limit = Arguments.maxValueDepth
        #expect(limit == 32)
        var deepest = try request(nested(limit)).arguments(1)
        let value = try deepest.value()
        #expect(value == (0..<limit).reduce(MessagePackValue.nil) { inner, _ in .array([inner]) })
        for depth in [limit + 1, MessagePackReader.maxDepth - 1] {  // the deepest the body check lets through, too
            var deeper = try request(nested(depth)).arguments(1)
            #expect(throws: IProtoError(.badArguments, "argument 1: value nests containers deeper than 32 levels")) { try deeper.value() }
            var named = try request(nested(depth)).arguments(1)
            #expect(throws: IProtoError(.badArguments, "doc nests containers deeper than 32 levels")) {
                try named.value(maxBytes: 1000, name: "doc")
            }
        }
        // Maps count as containers too.
        let maps: [UInt8] = [0x91] + Array(repeating: [0x81, 0xc0] as [UInt8], count: limit + 1).flatMap { $0 } + [0xc0]
        var deepMaps = try request(maps).arguments(1)
        #expect { try deepMaps.value() } throws: { ($0 as? IProtoError)?.code == .badArguments }
    }

    @Test func malformedValuesAreMalformedBodies() throws {
        // A request's body is checked whole before any argument is read.
        for body in [[0x92, 0x01], [0xc1], [0xa3, 0x41], [0x81, 0x01]] as [[UInt8]] {
            #expect { try request(body).arguments(1) } throws: { ($0 as? IProtoError)?.code == .malformedBody }
            // And value() itself refuses them, read without that check.
            var unchecked = Arguments(reader: MessagePackReader(body), count: 1)
            #expect { try unchecked.value() } throws: { ($0 as? IProtoError)?.code == .malformedBody }
            var measured = Arguments(reader: MessagePackReader(body), count: 1)
            #expect { try measured.value(maxBytes: 0) } throws: { ($0 as? IProtoError)?.code == .malformedBody }
        }
        var truncated = Arguments(reader: MessagePackReader([0x92, 0x01]), count: 1)
        #expect(throws: IProtoError(.malformedBody, "malformed MessagePack body: argument 1: truncated MessagePack value")) {
            try truncated.value()
        }
    }

    @Test func valueRefusesExtensionTypes() throws {
        var arguments = try request([0x91, 0x91, 0xd4, 0x01, 0x00]).arguments(1)  // [fixext 1]
        #expect(throws: IProtoError(.badArguments, "argument 1: value holds a MessagePack extension type, which is not supported")) {
            try arguments.value()
        }
    }

    @Test func valueInAnArrayIsNamedByTheArray() throws {
        var arguments = try request([0x01, 0x92, 0xa1, 0x78, 0x91, 0x91, 0xc0]).arguments(2)
        #expect(try arguments.int() == 1)
        #expect(try arguments.arrayCount() == 2)
        #expect(try arguments.value() == .stringBytes([0x78]))
        #expect(throws: IProtoError(.tooLong, "argument 2: value of 3 bytes exceeds 2 bytes")) { try arguments.value(maxBytes: 2) }
    }

    @Test func readValueReadsAsTheReaderDoes() throws {
        let depth = Arguments.maxValueDepth + 8
        var deep = try Arguments(values: Array(repeating: 0x91, count: depth) + [0xc0], count: 1)
        #expect(try deep.readValue() == (0..<depth).reduce(MessagePackValue.nil) { inner, _ in .array([inner]) })
        var ext = try Arguments(values: [0xd4, 0x01, 0x07], count: 1)
        #expect(try ext.readValue() == .binary([0x07]))
    }
}
