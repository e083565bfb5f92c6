/// A MessagePack value a handler returns as its response body.
public enum MessagePackValue: Equatable, Sendable {
    case `nil`
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    /// A string given as its raw bytes, sent back exactly as stored.
    case stringBytes([UInt8])
    case binary([UInt8])
    case array([MessagePackValue])
    /// Key-value pairs in the order given.
    case map([MessagePackPair])
}

/// One entry of a `MessagePackValue.map`.
public struct MessagePackPair: Equatable, Sendable {
    public var key: MessagePackValue
    public var value: MessagePackValue

    public init(_ key: MessagePackValue, _ value: MessagePackValue) {
        self.key = key
        self.value = value
    }
}

extension MessagePackValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral,
    ExpressibleByBooleanLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(nilLiteral: ()) { self = .nil }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
