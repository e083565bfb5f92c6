import Testing
@testable import IProto

@Suite struct MessagePackWriterTests {
    @Test(arguments: [
        (MessagePackValue.nil, [0xc0]),
        (.bool(true), [0xc3]),
        (.bool(false), [0xc2]),
        (.int(0), [0x00]),
        (.int(127), [0x7f]),
        (.int(128), [0xcc, 0x80]),
        (.int(256), [0xcd, 0x01, 0x00]),
        (.int(65536), [0xce, 0x00, 0x01, 0x00, 0x00]),
        (.uint(UInt64.max), [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (.int(-1), [0xff]),
        (.int(-32), [0xe0]),
        (.int(-33), [0xd0, 0xdf]),
        (.int(Int64.min), [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        (.double(1.5), [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
        (.string("hello"), [0xa5, 0x68, 0x65, 0x6c, 0x6c, 0x6f]),
        (.stringBytes([0xff, 0xfe]), [0xa2, 0xff, 0xfe]),
        (.binary([1, 2]), [0xc4, 0x02, 0x01, 0x02]),
        (.array([.int(1), .nil]), [0x92, 0x01, 0xc0]),
        (.map([MessagePackPair("a", 1)]), [0x81, 0xa1, 0x61, 0x01]),
    ] as [(MessagePackValue, [UInt8])])
    func encodesExactBytes(value: MessagePackValue, expected: [UInt8]) {
        var writer = MessagePackWriter()
        writer.write(value)
        #expect(writer.bytes == expected)
    }

    @Test(arguments: [0, 31, 32, 255, 256, 65535, 65536])
    func stringLengthsRoundTrip(length: Int) throws {
        let text = String(repeating: "x", count: length)
        var writer = MessagePackWriter()
        writer.writeString(text)
        var reader = MessagePackReader(writer.bytes)
        #expect(try reader.readString() == text)
        #expect(reader.isAtEnd)
    }

    @Test func resetKeepsNothing() {
        var writer = MessagePackWriter()
        writer.write(.string("abc"))
        writer.reset()
        writer.write(.nil)
        #expect(writer.bytes == [0xc0])
    }
}

@Suite struct MessagePackReaderTests {
    @Test(arguments: [Int64.min, -129, -128, -33, -32, -1, 0, 1, 127, 128, 255, 256, 65535, 65536, Int64(UInt32.max), Int64.max])
    func integersRoundTrip(value: Int64) throws {
        var reader = MessagePackReader(messagePackBytes(.int(value)))
        let decoded = try reader.readInteger()
        #expect(decoded.exactInt == Int(value))
        #expect(reader.isAtEnd)
    }

    @Test func positiveValuesInSignedEncodingsReadAsUnsigned() throws {
        // 0xd0 0x05 is int8 5: a valid, if unusual, encoding of 5.
        var reader = MessagePackReader([0xd0, 0x05])
        #expect(try reader.readInteger() == .unsigned(5))
    }

    @Test func unsignedAboveInt64IsNotAnInt() throws {
        var reader = MessagePackReader(messagePackBytes(.uint(UInt64.max)))
        let value = try reader.readInteger()
        #expect(value == .unsigned(UInt64.max))
        #expect(value.exactInt == nil)
    }

    @Test func neverUsedByteIsRejected() {
        var reader = MessagePackReader([0xc1])
        #expect(throws: MessagePackError.invalidByte(0xc1)) { try reader.readToken() }
    }

    @Test(arguments: [
        [0xa5, 0x68, 0x65] as [UInt8],       // fixstr of 5 with 2 bytes
        [0xd9],                               // str8 without its length
        [0xda, 0x00],                         // str16 with half a length
        [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61], // str32 of 4 GiB
        [0xcd, 0x01],                         // uint16 cut short
        [0xcb, 0x00, 0x00],                   // double cut short
        [0xc4, 0x03, 0x01],                   // bin8 cut short
        [0xdc, 0x00],                         // array16 header cut short
        [0xd4],                               // fixext1 without type
        [0xc7, 0x05, 0x01, 0x00],             // ext8 cut short
        [],
    ])
    func truncatedValuesAreRejected(bytes: [UInt8]) {
        var reader = MessagePackReader(bytes)
        #expect(throws: MessagePackError.truncated) { try reader.skipValue() }
    }

    @Test func hugeContainerCountsFailFastInsteadOfOverflowing() {
        for header: [UInt8] in [[0xdd, 0xff, 0xff, 0xff, 0xff], [0xdf, 0xff, 0xff, 0xff, 0xff], [0xdc, 0xff, 0xff]] {
            var reader = MessagePackReader(header + [0x01, 0x02])
            #expect(throws: MessagePackError.truncated) { try reader.skipValue() }
        }
    }

    @Test func deepNestingIsBounded() {
        let deep = [UInt8](repeating: 0x91, count: 1000) + [0x01]
        var reader = MessagePackReader(deep)
        #expect(throws: MessagePackError.tooDeep) { try reader.skipValue() }
        let fine = [UInt8](repeating: 0x91, count: 10) + [0x01]
        var fineReader = MessagePackReader(fine)
        #expect(throws: Never.self) { try fineReader.skipValue() }
        #expect(fineReader.isAtEnd)
    }

    /// Validating and decoding agree on the limit: 64 nested containers with a value inside pass, 65 do not.
    @Test func skipAndReadShareTheDepthLimit() {
        let limit = MessagePackReader.maxDepth
        for (depth, allowed) in [(limit, true), (limit + 1, false)] {
            let nested = [UInt8](repeating: 0x91, count: depth) + [0x01]
            var skipper = MessagePackReader(nested)
            var decoder = MessagePackReader(nested)
            if allowed {
                #expect(throws: Never.self) { try skipper.skipValue() }
                #expect(throws: Never.self) { try decoder.readValue() }
            } else {
                #expect(throws: MessagePackError.tooDeep) { try skipper.skipValue() }
                #expect(throws: MessagePackError.tooDeep) { try decoder.readValue() }
            }
        }
    }

    @Test func skipsNestedContainersAndExtensions() throws {
        let bytes: [UInt8] = [0x82, 0xa1, 0x61, 0x92, 0x01, 0xc0, 0xa1, 0x62, 0x80,  // {"a": [1, nil], "b": {}}
                              0xd4, 0x01, 0x02,                                      // fixext1
                              0xc7, 0x02, 0x05, 0xaa, 0xbb,                          // ext8 of 2
                              0x2a]
        var reader = MessagePackReader(bytes)
        try reader.skipValue()
        try reader.skipValue()
        try reader.skipValue()
        #expect(try reader.readInteger() == .unsigned(42))
        #expect(reader.isAtEnd)
    }

    @Test func typeMismatchNamesBothTypes() {
        var reader = MessagePackReader(messagePackBytes(.string("5")))
        #expect(throws: MessagePackError.typeMismatch(expected: "integer", found: "string")) { try reader.readInteger() }
    }

    @Test func floatIsWidenedToDouble() throws {
        var reader = MessagePackReader([0xca, 0x3f, 0xc0, 0x00, 0x00])  // float32 1.5
        #expect(try reader.readDouble() == 1.5)
    }

    @Test func invalidUTF8IsKeptAsBytes() throws {
        var reader = MessagePackReader([0xa2, 0xff, 0x00])
        #expect(Array(try reader.readStringBytes()) == [0xff, 0x00])
    }
}

func messagePackBytes(_ value: MessagePackValue) -> [UInt8] {
    var writer = MessagePackWriter()
    writer.write(value)
    return writer.bytes
}
