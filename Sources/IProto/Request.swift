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
        let (values, first) = try countValues(in: body)
        var reader = MessagePackReader(body)
        if values == 1, case .array(let elements) = first, elements == count {
            _ = try? reader.readArrayHeader()
            return Arguments(reader: reader, count: count)
        }
        if values == count { return Arguments(reader: reader, count: count) }
        if count == 0, values == 1, case .nil = first {
            return Arguments(reader: reader, count: 0)
        }
        let expected = "expected \(count) argument\(count == 1 ? "" : "s")"
        if values == 1, case .array(let elements) = first {
            throw IProtoError(.badArguments, "\(expected), got an array of \(elements)")
        }
        throw IProtoError(.badArguments, "\(expected), got \(values) value\(values == 1 ? "" : "s")")
    }
}

/// How many MessagePack values `body` holds one after another, validating
/// each, and the first one's header (nil when there is none), which decides
/// the body's form without decoding it again.
private func countValues(in body: [UInt8]) throws(IProtoError) -> (values: Int, first: MessagePackToken?) {
    var reader = MessagePackReader(body)
    var values = 0
    var first: MessagePackToken?
    do {
        while !reader.isAtEnd {
            let header = try reader.skipValue()
            if values == 0 { first = header }
            values += 1
        }
    } catch {
        throw IProtoError(.malformedBody, "malformed MessagePack body: \(error)")
    }
    return (values, first)
}

/// Typed access to a request's arguments, in order. Errors name the argument
/// (1-based) and map to ``ReturnCode/badArguments``, ``ReturnCode/outOfRange``
/// or ``ReturnCode/tooLong``.
///
/// Arrays are read element by element: ``arrayCount(maxCount:name:)`` reads an
/// array argument's header, and the reads after it return its elements, which
/// errors attribute to that argument.
public struct Arguments: Sendable {
    private var reader: MessagePackReader
    private let count: Int
    private var position = 0
    /// Elements of the arrays opened by `arrayCount` not read yet. Reads are
    /// depth-first, so one total covers nested arrays too.
    private var elementsLeft = 0

    init(reader: MessagePackReader, count: Int) {
        self.reader = reader
        self.count = count
    }

    /// Typed access to a body of exactly `count` values one after another, with
    /// no array form: a reply's body, where one array is one value. Invalid
    /// MessagePack or another number of values throws.
    public init(values body: [UInt8], count: Int) throws(IProtoError) {
        let values = try countValues(in: body).values
        guard values == count else {
            throw IProtoError(.badArguments, "expected \(count) value\(count == 1 ? "" : "s"), got \(values)")
        }
        self.init(reader: MessagePackReader(body), count: count)
    }

    /// Reads the next argument (or array element) with `read`, turning decoding errors into bad-argument errors.
    @inline(__always)  // keeps the per-argument read free of a closure call
    private mutating func next<T>(
        _ read: (inout MessagePackReader) throws(MessagePackError) -> T
    ) throws(IProtoError) -> T {
        try advance()
        do {
            return try read(&reader)
        } catch {
            throw IProtoError(.badArguments, "argument \(position): \(error)")
        }
    }

    /// Counts the next read as an array element or as the next argument.
    @inline(__always)
    private mutating func advance() throws(IProtoError) {
        if elementsLeft > 0 {
            elementsLeft -= 1
        } else {
            guard position < count else {
                throw IProtoError(.internalError, "handler read more than its \(count) declared arguments")
            }
            position += 1
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
            throw .outOfRange(name ?? "argument \(position):", value, range)
        }
        return exact
    }

    /// Reads a non-negative integer; a negative one is out of range.
    public mutating func uint() throws(IProtoError) -> UInt {
        let value = try next { reader throws(MessagePackError) in try reader.readInteger() }
        guard case .unsigned(let unsigned) = value else {
            throw IProtoError(.outOfRange, "argument \(position): \(value) is negative")
        }
        return UInt(unsigned)
    }

    public mutating func bool() throws(IProtoError) -> Bool {
        try next { reader throws(MessagePackError) in try reader.readBool() }
    }

    public mutating func double() throws(IProtoError) -> Double {
        try next { reader throws(MessagePackError) in try reader.readDouble() }
    }

    /// Reads a string's raw bytes, at most `maxBytes` of them, also when sent as
    /// binary data (a client's `[]byte`); errors call it `name` ("value of 257
    /// bytes exceeds 256 bytes") or else by its position.
    public mutating func stringBytes(maxBytes: Int = .max, name: String? = nil) throws(IProtoError) -> [UInt8] {
        let bytes = try next { reader throws(MessagePackError) in try reader.readStringOrBinaryBytes() }
        try checkLength(bytes.count, maxBytes, "bytes", name, "string")
        return Array(bytes)
    }

    /// Reads a string of at most `maxBytes` UTF-8 bytes; invalid UTF-8 is repaired.
    public mutating func string(maxBytes: Int = .max, name: String? = nil) throws(IProtoError) -> String {
        let bytes = try next { reader throws(MessagePackError) in try reader.readStringBytes() }
        try checkLength(bytes.count, maxBytes, "bytes", name, "string")
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads binary data of at most `maxBytes` bytes, named in errors as for strings.
    public mutating func binary(maxBytes: Int = .max, name: String? = nil) throws(IProtoError) -> [UInt8] {
        Array(try binarySlice(maxBytes: maxBytes, name: name))
    }

    /// The same, left where it lies in the body: a slice of it, not a copy.
    public mutating func binarySlice(maxBytes: Int = .max, name: String? = nil) throws(IProtoError) -> ArraySlice<UInt8> {
        let bytes = try next { reader throws(MessagePackError) in try reader.readBinary() }
        try checkLength(bytes.count, maxBytes, "bytes", name, "binary")
        return bytes
    }

    /// The deepest container nesting ``value(maxBytes:name:)`` accepts: a
    /// scalar is 0 deep, `[1]` 1 deep, `[[1]]` 2.
    public static let maxValueDepth = 32

    /// Reads one whole value of any type, of at most `maxBytes` bytes encoded
    /// (its header included), nested at most ``maxValueDepth`` containers deep.
    ///
    /// Strings come as ``MessagePackValue/stringBytes(_:)``, their bytes exactly
    /// as sent; binary data as ``MessagePackValue/binary(_:)``; integers as
    /// `.int` or `.uint` by their encoding. Extension types, which
    /// `MessagePackValue` cannot hold, are bad arguments, as is deeper nesting;
    /// over `maxBytes` is too long and invalid MessagePack a malformed body.
    /// Errors call the value `name` or else by its position.
    public mutating func value(maxBytes: Int = .max, name: String? = nil) throws(IProtoError) -> MessagePackValue {
        try advance()
        let start = reader.offset
        if maxBytes < reader.bytes.count - start {  // else it cannot be over: no pass to measure it
            var measure = reader
            do {
                try measure.skipValue()
            } catch {
                throw refusal(error == .tooDeep ? .tooDeep : .malformed(error), name)
            }
            try checkLength(measure.offset - start, maxBytes, "bytes", name, "value")
        }
        do {
            return try readAnyValue(depth: 0)
        } catch {
            throw refusal(error, name)
        }
    }

    /// The error answering a value ``value(maxBytes:name:)`` refuses.
    private func refusal(_ error: AnyValueError, _ name: String?) -> IProtoError {
        let subject = name ?? "argument \(position): value"
        switch error {
        case .tooDeep:
            return IProtoError(.badArguments, "\(subject) nests containers deeper than \(Self.maxValueDepth) levels")
        case .extensionType:
            return IProtoError(.badArguments, "\(subject) holds a MessagePack extension type, which is not supported")
        case .malformed(let error):
            return IProtoError(.malformedBody, "malformed MessagePack body: argument \(position): \(error)")
        }
    }

    /// Why ``value(maxBytes:name:)`` refuses a value (before naming the argument).
    private enum AnyValueError: Error {
        case tooDeep
        case extensionType
        case malformed(MessagePackError)
    }

    /// Reads one value, `depth` containers deep, for ``value(maxBytes:name:)``.
    /// Recursive, bounded by ``maxValueDepth``.
    private mutating func readAnyValue(depth: Int) throws(AnyValueError) -> MessagePackValue {
        let token: MessagePackToken
        do {
            token = try reader.readToken()
        } catch {
            throw .malformed(error)
        }
        switch token {
        case .nil: return .nil
        case .bool(let value): return .bool(value)
        case .uint(let value): return .uint(value)
        case .int(let value): return .int(value)
        case .double(let value): return .double(value)
        case .string(let range): return .stringBytes(Array(reader.bytes[range]))
        case .binary(let range): return .binary(Array(reader.bytes[range]))
        case .extension: throw .extensionType
        case .array(let count):
            guard depth < Self.maxValueDepth else { throw .tooDeep }
            guard count <= reader.bytes.count - reader.offset else { throw .malformed(.truncated) }
            var values: [MessagePackValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count { values.append(try readAnyValue(depth: depth + 1)) }
            return .array(values)
        case .map(let count):
            guard depth < Self.maxValueDepth else { throw .tooDeep }
            guard count <= (reader.bytes.count - reader.offset) / 2 else { throw .malformed(.truncated) }
            var pairs: [MessagePackPair] = []
            pairs.reserveCapacity(count)
            for _ in 0..<count {
                let key = try readAnyValue(depth: depth + 1)
                pairs.append(MessagePackPair(key, try readAnyValue(depth: depth + 1)))
            }
            return .map(pairs)
        }
    }

    /// Reads one whole value as ``MessagePackReader/readValue()`` does: nested
    /// as deep as the reader allows, extension types as binary data. For a
    /// reply's values, which a server sends (the generated client reads
    /// `<value>` so); a request's arguments are read with ``value(maxBytes:name:)``,
    /// which bounds a client's values more tightly.
    public mutating func readValue() throws(IProtoError) -> MessagePackValue {
        try next { reader throws(MessagePackError) in try reader.readValue() }
    }

    public mutating func `nil`() throws(IProtoError) {
        try next { reader throws(MessagePackError) in try reader.readNil() }
    }

    /// Consumes the next value if it is nil (an optional value left out) and says whether it did.
    public mutating func skipNil() throws(IProtoError) -> Bool {
        guard case .nil? = try? reader.peekToken() else { return false }
        try `nil`()
        return true
    }

    /// Reads an array's header, at most `maxCount` elements, and returns its
    /// element count: the next that many reads return the elements. Errors
    /// call it `name` or else by its position.
    public mutating func arrayCount(maxCount: Int = .max, name: String? = nil) throws(IProtoError) -> Int {
        let elements = try next { reader throws(MessagePackError) in try reader.readArrayHeader() }
        try checkLength(elements, maxCount, "elements", name, "array")
        elementsLeft += elements
        return elements
    }

    /// Throws unless `length` is within `limit`, calling the value `name` or
    /// else "argument N: `kind`" (built only then: this runs on every read).
    private func checkLength(_ length: Int, _ limit: Int, _ unit: String, _ name: String?, _ kind: String) throws(IProtoError) {
        guard length <= limit else {
            let subject = name ?? "argument \(position): \(kind)"
            throw .tooLong(subject, length: length, limit: limit, unit: unit)
        }
    }
}
