import IProtoCodegen
import Testing

@Suite struct ParserTests {
    @Test func storageDescriptionIsTheImplementedAPI() throws {
        let api = try APIDescription(parsing: try packageFile("Sources/IProtoStorage/storage.iproto-api"))
        #expect(api.service == "Storage")
        #expect(api.functions.map(\.funcID) == [0x0001_0001, 0x0001_0002, 0x0001_0003, 0x0002_0001, 0x0002_0002])
        #expect(api.functions.map(\.name) == [
            "ADM_STORAGE_SWITCH_READONLY", "ADM_STORAGE_SWITCH_READWRITE", "ADM_STORAGE_SWITCH_MAINTENANCE",
            "STORAGE_REPLACE", "STORAGE_READ",
        ])
        #expect(api.functions[3] == APIFunction(
            funcID: 0x0002_0001, name: "STORAGE_REPLACE", method: "replace",
            request: [APIValue("index", .int(range: 0...999)), APIValue("value", .stringBytes(maxBytes: 256))],
            response: [], summary: "Stores a string at an index."
        ))
        #expect(api.functions[4].response == [APIValue(nil, .stringBytes(maxBytes: nil))])
    }

    @Test func everyTypeAndItsLimits() throws {
        let api = try APIDescription(parsing: """
            service Types
            0x1 | ALL | all | <a: bool> <b:int(-5...5)><c: uint><d: float><e: double><f: str(3)><g: bin><h: [str(64)?](16)?><i: [[int]]> \
            | <str><count: uint> | Every type; '|' may follow.|
            """)
        let function = try #require(api.functions.first)
        #expect(function.request.map(\.type) == [
            .bool, .int(range: -5...5), .uint, .double, .double, .string(maxBytes: 3), .binary(maxBytes: nil),
            .optional(.array(.optional(.string(maxBytes: 64)), maxCount: 16)), .array(.array(.int(range: nil), maxCount: nil), maxCount: nil),
        ])
        #expect(function.response == [APIValue(nil, .string(maxBytes: nil)), APIValue("count", .uint)])
        #expect(function.summary == "Every type; '|' may follow.|")
    }

    @Test func anyValueAndItsCompositions() throws {
        let api = try APIDescription(parsing: """
            service Values
            0x1 | ANY | any | <a: value><b: value(64)><c: value?><d: [value(8)?](4)> | <value><[value]?> | Any values.
            """)
        let function = try #require(api.functions.first)
        #expect(function.request.map(\.type) == [
            .value(maxBytes: nil), .value(maxBytes: 64), .optional(.value(maxBytes: nil)),
            .array(.optional(.value(maxBytes: 8)), maxCount: 4),
        ])
        #expect(function.response.map(\.type) == [.value(maxBytes: nil), .optional(.array(.value(maxBytes: nil), maxCount: nil))])
        #expect(throws: DescriptionError(line: 2, "request: a negative limit -1")) {
            try APIDescription(parsing: "service S\n0x1 | A | a | <x: value(-1)> | <nil> |")
        }
    }

    @Test(arguments: [
        ("0x1 | A | a | <nil> | <nil> |\n0x1 | B | b | <nil> | <nil> |", 3, "duplicate func_id 0x00000001 (first on line 2)"),
        ("0x1 | A | a | <nil> | <nil> |\n# a comment\n0x2 | A | b | <nil> | <nil> |", 4, "duplicate name A (first on line 2)"),
        ("0x1 | A | a | <nil> | <nil> |\n0x2 | B | a | <nil> | <nil> |", 3, "duplicate method a (first on line 2)"),
        ("0x1 | A | a | <index: string> | <nil> |", 2, "request: unknown type 'string'"),
        ("0x1 | A | a | <nil> | <nil>", 2, "expected 6 columns separated by '|' (func_id | name | method | request | response | description), found 5"),
        ("0x123456789 | A | a | <nil> | <nil> |", 2, "func_id '0x123456789' is not 0x followed by 1 to 8 hex digits"),
        ("1 | A | a | <nil> | <nil> |", 2, "func_id '1' is not 0x followed by 1 to 8 hex digits"),
        ("0x1 | A-B | a | <nil> | <nil> |", 2, "name 'A-B' is not letters, digits and '_'"),
        ("0x1 | A | Read | <nil> | <nil> |", 2, "method 'Read' is not a lowerCamelCase Swift name"),
        ("0x1 | A | a | <int> | <nil> |", 2, "request: every argument needs a name, as in <index: int>"),
        ("0x1 | A | a | <x: int><x: str> | <nil> |", 2, "request: duplicate name 'x'"),
        ("0x1 | A | a | <nil><x: int> | <nil> |", 2, "request: <nil> stands alone: it means no values"),
        ("0x1 | A | a | <x: [nil]> | <nil> |", 2, "request: <nil> stands alone: it means no values"),
        ("0x1 | A | a | <x: int | <nil> |", 2, "request: expected '>' at ''"),
        ("0x1 | A | a | x: int | <nil> |", 2, "request: expected '<' at 'x: int'"),
        ("0x1 | A | a | | <nil> |", 2, "request: expected <nil> or values such as <index: int>"),
        ("0x1 | A | a | <x: bool(1)> | <nil> |", 2, "request: bool takes no limit"),
        ("0x1 | A | a | <x: int(5...1)> | <nil> |", 2, "request: empty range 5...1"),
        ("0x1 | A | a | <x: int(0..9)> | <nil> |", 2, "request: expected '...' at '..9)>'"),
        ("0x1 | A | a | <x: str(-1)> | <nil> |", 2, "request: a negative limit -1"),
        ("0x1 | A | a | <x: int??> | <nil> |", 2, "request: a type is optional once: one '?'"),
        ("0x1 | A | a | <timeout: int> | <nil> |", 2, "request: 'timeout' is reserved for the client's call timeout"),
        ("0x1 | A | a | <nil> | <[int> |", 2, "response: expected ']' at '>'"),
        ("service Again", 2, "a second service line (the first is on line 1)"),
        ("service", 2, "a second service line (the first is on line 1)"),
    ] as [(String, Int, String)])
    func mistakesAreReportedWithTheirLine(lines: String, line: Int, message: String) {
        #expect(throws: DescriptionError(line: line, message)) {
            try APIDescription(parsing: "service Test\n" + lines)
        }
    }

    @Test func theServiceComesFirstAndOnce() {
        #expect(throws: DescriptionError(line: 2, "a function before the 'service Name' line")) {
            try APIDescription(parsing: "# no service\n0x1 | A | a | <nil> | <nil> |")
        }
        #expect(throws: DescriptionError(line: 1, "no 'service Name' line")) { try APIDescription(parsing: "") }
        #expect(throws: DescriptionError(line: 1, "expected 'service Name', with an UpperCamelCase Swift name")) {
            try APIDescription(parsing: "service storage")
        }
    }
}
