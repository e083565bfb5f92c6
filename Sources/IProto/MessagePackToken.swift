/// One MessagePack value header as read from a buffer.
///
/// Payload-carrying types hold the byte range of their payload in the buffer
/// they were read from; containers hold their element count.
public enum MessagePackToken: Equatable, Sendable {
    case `nil`
    case bool(Bool)
    case uint(UInt64)
    case int(Int64)
    case double(Double)
    case string(Range<Int>)
    case binary(Range<Int>)
    case array(count: Int)
    case map(count: Int)
    case `extension`(Range<Int>)

    /// The MessagePack type's name, for error messages.
    public var typeName: String {
        switch self {
        case .nil: "nil"
        case .bool: "bool"
        case .uint, .int: "integer"
        case .double: "float"
        case .string: "string"
        case .binary: "binary"
        case .array: "array"
        case .map: "map"
        case .extension: "extension"
        }
    }
}

/// Why bytes are not valid MessagePack, or not the expected value.
public enum MessagePackError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The buffer ends inside a value.
    case truncated
    /// A byte that never starts a MessagePack value (0xc1).
    case invalidByte(UInt8)
    /// Containers nested deeper than the reader allows.
    case tooDeep
    /// A well-formed value of another type than the one asked for.
    case typeMismatch(expected: String, found: String)

    public var description: String {
        switch self {
        case .truncated: "truncated MessagePack value"
        case .invalidByte(let byte): "invalid MessagePack byte 0x\(String(byte, radix: 16))"
        case .tooDeep: "MessagePack containers nested too deeply"
        case .typeMismatch(let expected, let found): "expected \(expected), got \(found)"
        }
    }
}
