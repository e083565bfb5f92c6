/// Reads MessagePack values one after another from a byte buffer.
///
/// Every read checks bounds and type first, so any input — truncated,
/// garbage, or huge container counts — ends in a `MessagePackError`, never in
/// a read past the buffer.
public struct MessagePackReader: Sendable {
    /// The deepest container nesting `skipValue()` follows.
    public static let maxDepth = 64

    public let bytes: [UInt8]
    /// Where the next value starts.
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// True when every byte has been read.
    public var isAtEnd: Bool { offset >= bytes.count }

    /// Reads the next value header (for containers, only the header).
    public mutating func readToken() throws(MessagePackError) -> MessagePackToken {
        let (token, next) = try decodeMessagePackToken(bytes, at: offset)
        offset = next
        return token
    }

    /// Looks at the next value header without consuming it.
    public func peekToken() throws(MessagePackError) -> MessagePackToken {
        try decodeMessagePackToken(bytes, at: offset).token
    }

    /// Skips one whole value, containers included, validating it on the way,
    /// and returns its header token.
    ///
    /// Iterative with a checked element budget: a container announcing more
    /// elements than bytes remain is rejected at once, not counted through.
    @discardableResult
    public mutating func skipValue() throws(MessagePackError) -> MessagePackToken {
        let header = try readToken()
        guard let first = try valuesInside(header) else { return header }  // scalars need no stack
        var pending = [first]  // values still to skip at each open nesting level
        while let last = pending.last {
            if last == 0 {
                pending.removeLast()
                continue
            }
            pending[pending.count - 1] = last - 1
            guard let values = try valuesInside(readToken()) else { continue }
            guard pending.count < Self.maxDepth else { throw .tooDeep }
            pending.append(values)
        }
        return header
    }

    /// For a container header just read, how many values follow (a map's pairs
    /// count twice), rejecting counts larger than the bytes left; nil for a
    /// scalar, which is then fully read.
    private func valuesInside(_ header: MessagePackToken) throws(MessagePackError) -> Int? {
        let values: Int
        switch header {
        case .array(let count): values = count
        case .map(let count): values = count * 2
        default: return nil
        }
        guard values <= bytes.count - offset else { throw .truncated }
        return values
    }

    /// Reads one whole value, containers included, nested at most ``maxDepth`` deep.
    public mutating func readValue() throws(MessagePackError) -> MessagePackValue {
        try readValue(depth: 0)
    }

    /// `depth`: the containers open around this value. As in `skipValue()`,
    /// at most ``maxDepth`` containers nest; scalars may sit inside the deepest.
    private mutating func readValue(depth: Int) throws(MessagePackError) -> MessagePackValue {
        switch try readToken() {
        case .nil: return .nil
        case .bool(let value): return .bool(value)
        case .uint(let value): return .uint(value)
        case .int(let value): return .int(value)
        case .double(let value): return .double(value)
        case .string(let range): return .stringBytes(Array(bytes[range]))
        case .binary(let range): return .binary(Array(bytes[range]))
        case .extension(let range): return .binary(Array(bytes[range]))
        case .array(let count):
            guard depth < Self.maxDepth else { throw .tooDeep }
            guard count <= bytes.count - offset else { throw .truncated }
            var values: [MessagePackValue] = []
            for _ in 0..<count { values.append(try readValue(depth: depth + 1)) }
            return .array(values)
        case .map(let count):
            guard depth < Self.maxDepth else { throw .tooDeep }
            guard count * 2 <= bytes.count - offset else { throw .truncated }
            var pairs: [MessagePackPair] = []
            for _ in 0..<count {
                let key = try readValue(depth: depth + 1)
                pairs.append(MessagePackPair(key, try readValue(depth: depth + 1)))
            }
            return .map(pairs)
        }
    }

    public mutating func readNil() throws(MessagePackError) {
        let token = try readToken()
        guard case .nil = token else { throw .typeMismatch(expected: "nil", found: token.typeName) }
    }

    public mutating func readBool() throws(MessagePackError) -> Bool {
        let token = try readToken()
        guard case .bool(let value) = token else { throw .typeMismatch(expected: "bool", found: token.typeName) }
        return value
    }

    /// Reads any MessagePack integer as a wide signed value.
    public mutating func readInteger() throws(MessagePackError) -> IntegerValue {
        switch try readToken() {
        case .uint(let value): return .unsigned(value)
        case .int(let value): return value < 0 ? .negative(value) : .unsigned(UInt64(value))
        case let token: throw .typeMismatch(expected: "integer", found: token.typeName)
        }
    }

    /// Reads a float or double.
    public mutating func readDouble() throws(MessagePackError) -> Double {
        let token = try readToken()
        guard case .double(let value) = token else { throw .typeMismatch(expected: "float", found: token.typeName) }
        return value
    }

    /// Reads a string's raw bytes (MessagePack does not require them to be UTF-8).
    public mutating func readStringBytes() throws(MessagePackError) -> ArraySlice<UInt8> {
        let token = try readToken()
        guard case .string(let range) = token else { throw .typeMismatch(expected: "string", found: token.typeName) }
        return bytes[range]
    }

    /// Reads a string, repairing invalid UTF-8 with replacement characters.
    public mutating func readString() throws(MessagePackError) -> String {
        String(decoding: try readStringBytes(), as: UTF8.self)
    }

    /// The bytes of a string or of binary data: for values kept as bytes, which
    /// clients encode either way (Go's msgpack sends `[]byte` as bin).
    public mutating func readStringOrBinaryBytes() throws(MessagePackError) -> ArraySlice<UInt8> {
        let token = try readToken()
        switch token {
        case .string(let range), .binary(let range): return bytes[range]
        default: throw .typeMismatch(expected: "string", found: token.typeName)
        }
    }

    public mutating func readBinary() throws(MessagePackError) -> ArraySlice<UInt8> {
        let token = try readToken()
        guard case .binary(let range) = token else { throw .typeMismatch(expected: "binary", found: token.typeName) }
        return bytes[range]
    }

    /// Reads an array header and returns its element count.
    public mutating func readArrayHeader() throws(MessagePackError) -> Int {
        let token = try readToken()
        guard case .array(let count) = token else { throw .typeMismatch(expected: "array", found: token.typeName) }
        return count
    }

    /// Reads a map header and returns its pair count.
    public mutating func readMapHeader() throws(MessagePackError) -> Int {
        let token = try readToken()
        guard case .map(let count) = token else { throw .typeMismatch(expected: "map", found: token.typeName) }
        return count
    }
}

/// A MessagePack integer: its encoding spans -2^63 … 2^64-1, wider than either Swift type.
public enum IntegerValue: Equatable, Sendable {
    case negative(Int64)
    case unsigned(UInt64)

    /// The value as an `Int`, or nil when it does not fit.
    public var exactInt: Int? {
        switch self {
        case .negative(let value): Int(exactly: value)
        case .unsigned(let value): Int(exactly: value)
        }
    }
}

extension IntegerValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .negative(let value): String(value)
        case .unsigned(let value): String(value)
        }
    }
}
