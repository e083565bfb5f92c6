/// A mistake in a description file, with the line it is on.
public struct DescriptionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The 1-based line number.
    public var line: Int
    public var message: String

    public init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}

extension APIDescription {
    /// Parses the text of a description file; docs/api-description.md describes the format.
    ///
    /// ```
    /// service Storage
    /// # func_id | name         | method | request              | response | description
    /// 0x00020002 | STORAGE_READ | read   | <index: int(0...999)> | <str>    | Returns the string at an index.
    /// ```
    public init(parsing text: String) throws(DescriptionError) {
        var parser = DescriptionParser()
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            try parser.parse(trimmed(line), line: index + 1)
        }
        guard let service = parser.service else {
            throw DescriptionError(line: 1, "no 'service Name' line")
        }
        self.init(service: service.name, functions: parser.functions)
    }
}

/// Reads a description line by line, remembering where each name was first
/// used so that a duplicate's error can point at both lines.
private struct DescriptionParser {
    private(set) var service: (name: String, line: Int)?
    private(set) var functions: [APIFunction] = []
    private var funcIDLines: [UInt32: Int] = [:]
    private var nameLines: [String: Int] = [:]
    private var methodLines: [String: Int] = [:]

    mutating func parse(_ text: Substring, line: Int) throws(DescriptionError) {
        if text.isEmpty || text.hasPrefix("#") { return }
        let words = text.split(whereSeparator: \.isWhitespace)
        if words.first == "service" {
            try parseService(words.dropFirst(), line: line)
        } else {
            try parseFunction(text, line: line)
        }
    }

    private mutating func parseService(_ words: ArraySlice<Substring>, line: Int) throws(DescriptionError) {
        if let service { throw DescriptionError(line: line, "a second service line (the first is on line \(service.line))") }
        guard words.count == 1, let name = words.first, isIdentifier(name), name.first!.isUppercase else {
            throw DescriptionError(line: line, "expected 'service Name', with an UpperCamelCase Swift name")
        }
        service = (String(name), line)
    }

    private mutating func parseFunction(_ text: Substring, line: Int) throws(DescriptionError) {
        guard service != nil else { throw DescriptionError(line: line, "a function before the 'service Name' line") }
        // The description comes last, so it may contain '|' itself.
        let columns = text.split(separator: "|", maxSplits: 5, omittingEmptySubsequences: false).map(trimmed)
        guard columns.count == 6 else {
            throw DescriptionError(line: line, "expected 6 columns separated by '|' (func_id | name | method | request | response | description), found \(columns.count)")
        }
        let function = APIFunction(
            funcID: try parseFuncID(columns[0], line: line),
            name: try parseName(columns[1], line: line),
            method: try parseMethod(columns[2], line: line),
            request: try parseSchema(columns[3], namesRequired: true, column: "request", line: line),
            response: try parseSchema(columns[4], namesRequired: false, column: "response", line: line),
            summary: String(columns[5])
        )
        try claim(function.funcID, in: &funcIDLines, "func_id \(hex(function.funcID))", line: line)
        try claim(function.name, in: &nameLines, "name \(function.name)", line: line)
        try claim(function.method, in: &methodLines, "method \(function.method)", line: line)
        functions.append(function)
    }

    /// Records that `key` is used on `line`, unless an earlier line has it.
    private func claim<Key: Hashable>(_ key: Key, in lines: inout [Key: Int], _ what: String, line: Int) throws(DescriptionError) {
        if let first = lines[key] { throw DescriptionError(line: line, "duplicate \(what) (first on line \(first))") }
        lines[key] = line
    }
}

private func parseFuncID(_ text: Substring, line: Int) throws(DescriptionError) -> UInt32 {
    let digits = text.dropFirst(2)
    guard text.hasPrefix("0x"), (1...8).contains(digits.count), digits.allSatisfy(\.isHexDigit),
          let funcID = UInt32(digits, radix: 16) else {
        throw DescriptionError(line: line, "func_id '\(text)' is not 0x followed by 1 to 8 hex digits")
    }
    return funcID
}

private func parseName(_ text: Substring, line: Int) throws(DescriptionError) -> String {
    guard isIdentifier(text) else {
        throw DescriptionError(line: line, "name '\(text)' is not letters, digits and '_'")
    }
    return String(text)
}

private func parseMethod(_ text: Substring, line: Int) throws(DescriptionError) -> String {
    guard isLowerCamelName(text) else {
        throw DescriptionError(line: line, "method '\(text)' is not a lowerCamelCase Swift name")
    }
    return String(text)
}

/// Parses a request or response column: `<nil>`, or values such as `<index: int(0...999)><value: str(256)>`.
private func parseSchema(_ text: Substring, namesRequired: Bool, column: String, line: Int) throws(DescriptionError) -> [APIValue] {
    var scanner = SchemaScanner(text, column: column, line: line)
    var values: [APIValue] = []
    var groups = 0
    var sawNil = false
    while !scanner.isAtEnd {
        try scanner.expect("<")
        groups += 1
        if scanner.takeNil() {
            sawNil = true
        } else {
            let value = try scanner.value()
            if namesRequired, value.name == nil {
                throw scanner.error("every argument needs a name, as in <index: int>")
            }
            if let name = value.name, values.contains(where: { $0.name == name }) {
                throw scanner.error("duplicate name '\(name)'")
            }
            values.append(value)
        }
        try scanner.expect(">")
    }
    if sawNil {
        guard groups == 1 else { throw scanner.error("<nil> stands alone: it means no values") }
        return []
    }
    guard !values.isEmpty else { throw scanner.error("expected <nil> or values such as <index: int>") }
    return values
}

/// Reads the values of one request or response column, character by character.
private struct SchemaScanner {
    private let characters: [Character]
    private var index = 0
    private let column: String
    private let line: Int

    init(_ text: Substring, column: String, line: Int) {
        characters = Array(text)
        self.column = column
        self.line = line
    }

    var isAtEnd: Bool { index == characters.count }

    func error(_ message: String) -> DescriptionError {
        DescriptionError(line: line, "\(column): \(message)")
    }

    /// Consumes `word` if it comes next (after spaces).
    mutating func take(_ word: String) -> Bool {
        skipSpaces()
        let word = Array(word)
        guard characters[index...].starts(with: word) else { return false }
        index += word.count
        skipSpaces()
        return true
    }

    /// Consumes `nil` if it is the whole of the next value.
    mutating func takeNil() -> Bool {
        let start = index
        if identifier() == "nil", characters[index...].first == ">" { return true }
        index = start
        return false
    }

    mutating func expect(_ word: String) throws(DescriptionError) {
        guard take(word) else { throw error("expected '\(word)' at '\(String(characters[index...]))'") }
    }

    /// `name: type` or just `type`.
    mutating func value() throws(DescriptionError) -> APIValue {
        let start = index
        if let name = identifier(), take(":") {
            guard isLowerCamelName(Substring(name)) else {
                throw error("'\(name)' is not a lowerCamelCase Swift name")
            }
            // The client's methods take the call's deadline under this label.
            guard name != "timeout" else { throw error("'timeout' is reserved for the client's call timeout") }
            return APIValue(name, try type())
        }
        index = start
        return APIValue(nil, try type())
    }

    /// `bool`, `int(0...9)`, `str(256)?`, `[int](8)`, ...
    mutating func type() throws(DescriptionError) -> APIType {
        var type: APIType
        if take("[") {
            let element = try self.type()
            try expect("]")
            type = .array(element, maxCount: try limit())
        } else {
            guard let name = identifier() else { throw error("expected a type at '\(String(characters[index...]))'") }
            if let plain = plainTypes[name] {
                if take("(") { throw error("\(name) takes no limit") }
                type = plain
            } else {
                switch name {
                case "int": type = .int(range: try range())
                case "str": type = .string(maxBytes: try limit())
                case "strbytes": type = .stringBytes(maxBytes: try limit())
                case "bin": type = .binary(maxBytes: try limit())
                case "value": type = .value(maxBytes: try limit())
                case "nil": throw error("<nil> stands alone: it means no values")
                default: throw error("unknown type '\(name)'")
                }
            }
        }
        if take("?") {
            if take("?") { throw error("a type is optional once: one '?'") }
            type = .optional(type)
        }
        return type
    }

    /// An optional `(lower...upper)` after `int`.
    private mutating func range() throws(DescriptionError) -> ClosedRange<Int>? {
        guard take("(") else { return nil }
        let lower = try integer()
        try expect("...")
        let upper = try integer()
        try expect(")")
        guard lower <= upper else { throw error("empty range \(lower)...\(upper)") }
        return lower...upper
    }

    /// An optional `(count)` after a string, binary or array type.
    private mutating func limit() throws(DescriptionError) -> Int? {
        guard take("(") else { return nil }
        let limit = try integer()
        try expect(")")
        guard limit >= 0 else { throw error("a negative limit \(limit)") }
        return limit
    }

    private mutating func integer() throws(DescriptionError) -> Int {
        skipSpaces()
        let start = index
        if index < characters.count, characters[index] == "-" { index += 1 }
        while index < characters.count, characters[index].isASCII, characters[index].isNumber { index += 1 }
        guard let value = Int(String(characters[start..<index])) else {
            throw error("expected an integer at '\(String(characters[start...]))'")
        }
        skipSpaces()
        return value
    }

    private mutating func identifier() -> String? {
        skipSpaces()
        let start = index
        while index < characters.count, isIdentifierCharacter(characters[index]) { index += 1 }
        guard index > start else { return nil }
        let word = String(characters[start..<index])
        skipSpaces()
        return word
    }

    private mutating func skipSpaces() {
        while index < characters.count, characters[index].isWhitespace { index += 1 }
    }
}

/// The types that take no limit, by name; `float` is another name for `double`.
private let plainTypes: [String: APIType] = ["bool": .bool, "uint": .uint, "double": .double, "float": .double]

private func isIdentifierCharacter(_ character: Character) -> Bool {
    character.isASCII && (character.isLetter || character.isNumber || character == "_")
}

/// ASCII letters, digits and '_', not starting with a digit.
private func isIdentifier(_ text: Substring) -> Bool {
    guard let first = text.first, !first.isNumber else { return false }
    return text.allSatisfy(isIdentifierCharacter)
}

/// A Swift name starting with a lowercase letter, as methods and values have.
private func isLowerCamelName(_ text: Substring) -> Bool {
    isIdentifier(text) && text.first!.isLowercase
}

private func trimmed(_ text: Substring) -> Substring {
    let start = text.firstIndex { !$0.isWhitespace } ?? text.endIndex
    let end = text.lastIndex { !$0.isWhitespace }.map(text.index(after:)) ?? start
    return text[start..<end]
}
