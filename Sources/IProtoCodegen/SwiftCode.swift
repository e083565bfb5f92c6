// Spellings shared by the emitters: Swift types, decoding and encoding
// expressions, func_ids and schemas as the API table shows them.

extension APIType {
    /// The Swift type a value of this type has in generated code.
    var swiftType: String {
        switch self {
        case .bool: "Bool"
        case .int: "Int"
        case .uint: "UInt"
        case .double: "Double"
        case .string: "String"
        case .stringBytes, .binary: "[UInt8]"
        case .value: "MessagePackValue"
        case .optional(let wrapped): wrapped.swiftType + "?"
        case .array(let element, _): "[" + element.swiftType + "]"
        }
    }

    /// How the API table shows the type: its MessagePack type and limits
    /// (`strbytes` is a `str` on the wire).
    var schema: String {
        switch self {
        case .bool: "bool"
        case .int(let range): "int" + (range.map { "(\($0.lowerBound)...\($0.upperBound))" } ?? "")
        case .uint: "uint"
        case .double: "double"
        case .string(let maxBytes), .stringBytes(let maxBytes): "str" + limit(maxBytes)
        case .binary(let maxBytes): "bin" + limit(maxBytes)
        case .value(let maxBytes): "value" + limit(maxBytes)
        case .optional(let wrapped): wrapped.schema + "?"
        case .array(let element, let maxCount): "[" + element.schema + "]" + limit(maxCount)
        }
    }

    /// True for an array, optional or not.
    var isArray: Bool {
        switch self {
        case .array: true
        case .optional(let wrapped): wrapped.isArray
        default: false
        }
    }

    /// True for `value`, whose Swift type takes `nil` literals itself.
    var isValue: Bool {
        if case .value = self { true } else { false }
    }

    /// True when a value of this type may be an array: an array, or any value
    /// (`value`), optional or not.
    var mayBeArray: Bool {
        switch self {
        case .array, .value: true
        case .optional(let wrapped): wrapped.mayBeArray
        default: false
        }
    }

    /// The limit of this type (of its value, when optional) as a constant's
    /// name suffix, Swift type and value; none for a type without a limit.
    var limitConstant: [(suffix: String, type: String, value: String)] {
        switch self {
        case .int(let range?): [("", "ClosedRange<Int>", "\(range.lowerBound)...\(range.upperBound)")]
        case .string(let maxBytes?), .stringBytes(let maxBytes?), .binary(let maxBytes?), .value(let maxBytes?):
            [("MaxBytes", "Int", "\(maxBytes)")]
        case .array(_, let maxCount?): [("MaxCount", "Int", "\(maxCount)")]
        case .optional(let wrapped): wrapped.limitConstant
        default: []
        }
    }

    /// An expression reading a value of this type from the `Arguments` variable
    /// `arguments`, checking its limits; `name` names it in limit errors. It
    /// throws but carries no `try`: the one before the statement using it covers
    /// every call in the statement. `reply`: the values are a reply's, which
    /// the client reads; a `value` is then read as `MessagePackReader.readValue()`
    /// reads it, without the tighter bounds of a request's.
    func decoding(from arguments: String, name: String?, reply: Bool = false) -> String {
        // The name only ever appears in a limit's error, so it is passed with a limit.
        func call(_ method: String, limit: String? = nil) -> String {
            let labels = limit.map { [$0] + [name.map { "name: \"\($0)\"" }].compactMap { $0 } } ?? []
            return "\(arguments).\(method)(\(labels.joined(separator: ", ")))"
        }
        switch self {
        case .bool: return call("bool")
        case .int(let range): return call("int", limit: range.map { "in: \($0.lowerBound)...\($0.upperBound)" })
        case .uint: return call("uint")
        case .double: return call("double")
        case .string(let maxBytes): return call("string", limit: maxBytes.map { "maxBytes: \($0)" })
        case .stringBytes(let maxBytes): return call("stringBytes", limit: maxBytes.map { "maxBytes: \($0)" })
        case .binary(let maxBytes): return call("binary", limit: maxBytes.map { "maxBytes: \($0)" })
        case .value(let maxBytes):
            return reply ? call("readValue") : call("value", limit: maxBytes.map { "maxBytes: \($0)" })
        case .optional(let wrapped):
            // A bare `nil` beside a MessagePackValue would be MessagePackValue.nil
            // (it is ExpressibleByNilLiteral), wrapped as `.some(.nil)`.
            let none = wrapped.isValue ? "MessagePackValue?.none" : "nil"
            return "\(arguments).skipNil() ? \(none) : \(wrapped.decoding(from: arguments, name: name, reply: reply))"
        case .array(let element, let maxCount):
            // Elements are named by their position in errors: the array's name would mislead.
            let count = call("arrayCount", limit: maxCount.map { "maxCount: \($0)" })
            let elementValue = element.decoding(from: arguments, name: nil, reply: reply)
            return "(0..<\(count)).map { _ throws(IProtoError) -> \(element.swiftType) in try \(elementValue) }"
        }
    }

    /// An expression turning `value`, a Swift expression of this type, into a `MessagePackValue`.
    func encoding(_ value: String) -> String {
        switch self {
        case .bool: ".bool(\(value))"
        case .int: ".int(Int64(\(value)))"
        case .uint: ".uint(UInt64(\(value)))"
        case .double: ".double(\(value))"
        case .string: ".string(\(value))"
        case .stringBytes: ".stringBytes(\(value))"
        case .binary: ".binary(\(value))"
        case .value: value
        // Spelled out: a bare `.nil` after `??` could also mean Optional.none.
        case .optional(.value): "\(value) ?? MessagePackValue.nil"
        case .optional(let wrapped): "\(value).map { MessagePackValue\(wrapped.encoding("$0")) } ?? MessagePackValue.nil"
        case .array(.value, _): ".array(\(value))"
        case .array(let element, _): ".array(\(value).map { \(element.encoding("$0")) })"
        }
    }
}

private func limit(_ value: Int?) -> String {
    value.map { "(\($0))" } ?? ""
}

extension [APIValue] {
    /// The values as the API table shows them: `<index: int(0...999)><value: str(256)>`, or `<nil>`.
    var schema: String {
        isEmpty ? "<nil>" : map { "<" + ($0.name.map { $0 + ": " } ?? "") + $0.type.schema + ">" }.joined()
    }

    /// The Swift parameters taking these values: `index: Int, value: [UInt8]`.
    var swiftParameters: [String] {
        map { "\($0.name!): \($0.type.swiftType)" }
    }

    /// The Swift type returning these values: nil for none, a tuple for several.
    var swiftReturnType: String? {
        switch count {
        case 0: nil
        case 1: self[0].type.swiftType
        default: "(" + map { ($0.name.map { $0 + ": " } ?? "") + $0.type.swiftType }.joined(separator: ", ") + ")"
        }
    }
}

extension APIFunction {
    /// The doc comment on the function's protocol requirement and client method.
    func docComment(indent: String) -> [String] {
        (summary.isEmpty ? [] : ["/// \(summary)", "///"]).map { indent + $0 } + [indent + "/// " + signature]
    }

    /// The function's row of the API table in one line: `` `STORAGE_READ` 0x00020002: `<index: int>` → `<str>` ``.
    var signature: String {
        "`\(name)` \(hex(funcID)): `\(request.schema)` → `\(response.schema)`"
    }

    /// The func_id as a Swift literal, grouped like the rest of the package: `0x0002_0001`.
    var swiftFuncID: String {
        let digits = hex(funcID).dropFirst(2)
        return "0x" + digits.prefix(4) + "_" + digits.suffix(4)
    }
}

/// A func_id as the API table writes it: `0x00020001`.
func hex(_ funcID: UInt32) -> String {
    let digits = String(funcID, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}

/// What the first line of every generated file says.
func generatedNotice(_ file: String) -> String {
    "Generated by iproto-codegen from \(file): edit that file, not this one."
}
