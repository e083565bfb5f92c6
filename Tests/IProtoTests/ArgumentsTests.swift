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
}
