/// One request as a handler sees it.
public struct Request: Sendable {
    public let funcID: UInt32
    public let requestID: UInt32
    /// The MessagePack body, exactly as received.
    public let body: [UInt8]

    public init(funcID: UInt32, requestID: UInt32, body: [UInt8]) {
        self.funcID = funcID
        self.requestID = requestID
        self.body = body
    }

    /// Validates the body as `count` arguments and returns a reader for them.
    ///
    /// Accepted forms: the values one after another (`<int><string>`), or one
    /// array holding exactly `count` values (`[int, string]`; a body that is a
    /// single array of `count` elements is always read this way). With no
    /// arguments the body may be empty, a single nil, or an empty array.
    /// Anything else — invalid MessagePack, more or fewer values — throws
    /// before the handler acts, so trailing garbage never half-executes a call.
    public func arguments(_ count: Int) throws(IProtoError) -> Arguments {
        var reader = MessagePackReader(body)
        var values = 0
        do {
            while !reader.isAtEnd {
                try reader.skipValue()
                values += 1
            }
        } catch {
            throw IProtoError(.malformedBody, "malformed MessagePack body: \(error)")
        }
        reader = MessagePackReader(body)
        if values == 1, case .array(let elements)? = try? reader.peekToken(), elements == count {
            _ = try? reader.readArrayHeader()
            return Arguments(reader: reader, count: count)
        }
        if values == count { return Arguments(reader: reader, count: count) }
        if count == 0, values == 1, case .nil? = try? reader.peekToken() {
            return Arguments(reader: reader, count: 0)
        }
        let expected = "expected \(count) argument\(count == 1 ? "" : "s")"
        if values == 1, case .array(let elements)? = try? reader.peekToken() {
            throw IProtoError(.badArguments, "\(expected), got an array of \(elements)")
        }
        throw IProtoError(.badArguments, "\(expected), got \(values) value\(values == 1 ? "" : "s")")
    }
}

/// Typed access to a request's arguments, in order. Errors name the argument
/// (1-based) and map to ``ReturnCode/badArguments``, ``ReturnCode/outOfRange``
/// or ``ReturnCode/tooLong``.
public struct Arguments: Sendable {
    private var reader: MessagePackReader
    private let count: Int
    private var position = 0

    init(reader: MessagePackReader, count: Int) {
        self.reader = reader
        self.count = count
    }

    /// Reads the next argument with `read`, turning decoding errors into bad-argument errors.
    private mutating func next<T>(
        _ read: (inout MessagePackReader) throws(MessagePackError) -> T
    ) throws(IProtoError) -> T {
        guard position < count else {
            throw IProtoError(.internalError, "handler read more than its \(count) declared arguments")
        }
        position += 1
        do {
            return try read(&reader)
        } catch {
            throw IProtoError(.badArguments, "argument \(position): \(error)")
        }
    }

    public mutating func int() throws(IProtoError) -> Int {
        let value = try next { reader throws(MessagePackError) in try reader.readInteger() }
        guard let exact = value.exactInt else {
            throw IProtoError(.outOfRange, "argument \(position): \(value) does not fit a 64-bit integer")
        }
        return exact
    }

    /// Reads an integer and checks that it lies in `range`; errors call it `name`
    /// ("index 1000 is out of range 0...999") or else by its position.
    public mutating func int(in range: ClosedRange<Int>, name: String? = nil) throws(IProtoError) -> Int {
        let value = try next { reader throws(MessagePackError) in try reader.readInteger() }
        guard let exact = value.exactInt, range.contains(exact) else {
            throw IProtoError(.outOfRange, "\(name ?? "argument \(position):") \(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return exact
    }

    public mutating func bool() throws(IProtoError) -> Bool {
        try next { reader throws(MessagePackError) in try reader.readBool() }
    }

    public mutating func double() throws(IProtoError) -> Double {
        try next { reader throws(MessagePackError) in try reader.readDouble() }
    }

    /// Reads a string's raw bytes, at most `maxBytes` of them.
    public mutating func stringBytes(maxBytes: Int = .max) throws(IProtoError) -> [UInt8] {
        let bytes = try next { reader throws(MessagePackError) in try reader.readStringBytes() }
        try checkLength(bytes.count, maxBytes, "string")
        return Array(bytes)
    }

    /// Reads a string of at most `maxBytes` UTF-8 bytes; invalid UTF-8 is repaired.
    public mutating func string(maxBytes: Int = .max) throws(IProtoError) -> String {
        String(decoding: try stringBytes(maxBytes: maxBytes), as: UTF8.self)
    }

    public mutating func binary(maxBytes: Int = .max) throws(IProtoError) -> [UInt8] {
        let bytes = try next { reader throws(MessagePackError) in try reader.readBinary() }
        try checkLength(bytes.count, maxBytes, "binary")
        return Array(bytes)
    }

    public mutating func `nil`() throws(IProtoError) {
        try next { reader throws(MessagePackError) in try reader.readNil() }
    }

    private func checkLength(_ length: Int, _ maxBytes: Int, _ kind: String) throws(IProtoError) {
        guard length <= maxBytes else {
            throw IProtoError(.tooLong, "argument \(position): \(kind) of \(length) bytes exceeds \(maxBytes)")
        }
    }
}
