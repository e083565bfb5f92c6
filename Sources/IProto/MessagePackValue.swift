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

extension MessagePackValue: CustomStringConvertible {
    /// JSON-like text: strings quoted (invalid UTF-8 shown as hex escapes), binary as hex.
    public var description: String {
        switch self {
        case .nil: "nil"
        case .bool(let value): "\(value)"
        case .int(let value): "\(value)"
        case .uint(let value): "\(value)"
        case .double(let value): "\(value)"
        case .string(let value): quoted(Array(value.utf8))
        case .stringBytes(let bytes): quoted(bytes)
        case .binary(let bytes): "bin(" + bytes.hexDigits() + ")"
        case .array(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .map(let pairs): "{" + pairs.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }
}

extension Sequence<UInt8> {
    /// Two lowercase hex digits per byte, joined by `separator`.
    public func hexDigits(separator: String = "") -> String {
        map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: separator)
    }
}

/// A string literal; bytes that are not printable valid UTF-8 become \xNN.
private func quoted(_ bytes: [UInt8]) -> String {
    guard let text = String(validating: bytes, as: UTF8.self) else {
        return "\"" + bytes.map { $0 >= 0x20 && $0 < 0x7f ? String(UnicodeScalar($0)) : "\\x" + [$0].hexDigits() }.joined() + "\""
    }
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case _ where scalar.value < 0x20: result += "\\x" + [UInt8(scalar.value)].hexDigits()
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}
