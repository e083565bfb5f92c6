/// A key of the KV cluster: a UUID4 in its canonical text form (8-4-4-4-12 lowercase hex digits,
/// version nibble 4, variant nibble 8, 9, a or b).
///
/// Clients may send keys in any case; the cluster stores, hashes and compares only the canonical
/// lowercase form, so `123E4567-…` and `123e4567-…` are the same key on every node.
public struct KVKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The canonical lowercase text: what is stored, hashed for placement and sent between nodes.
    public let text: String

    /// The example that every key error quotes.
    public static let example = "123e4567-e89b-42d3-a456-426614174000"

    /// Parses `text` case-insensitively, or throws a `KeyError` saying exactly what is wrong with it.
    public init(_ text: String) throws(KeyError) {
        if let canonical = Self.canonical(wellFormed: text) {
            self.text = canonical
            return
        }
        if text.isEmpty { throw .empty }
        // Counted without copying: the argument may be as long as a request allows.
        let count = text.count
        guard count == 36 else { throw .length(count) }
        var canonical = ""
        canonical.reserveCapacity(36)
        for (index, character) in text.enumerated() {
            let position = index + 1
            if Self.hyphenPositions.contains(position) {
                guard character == "-" else { throw .missingHyphen(position: position, found: character) }
                canonical.append("-")
                continue
            }
            guard character.isASCII, character.isHexDigit, let lower = character.lowercased().first else {
                throw .notHex(position: position, found: character)
            }
            canonical.append(lower)
        }
        let lowered = Array(canonical)
        let version = lowered[Self.versionPosition - 1]
        guard version == "4" else { throw .version(version) }
        let variant = lowered[Self.variantPosition - 1]
        guard "89ab".contains(variant) else { throw .variant(variant) }
        self.text = canonical
    }

    /// The canonical form of a well-formed key, read byte by byte (what every key a
    /// client sends goes through, so it stays cheap); nil for anything else, which the
    /// character-by-character path then explains.
    private static func canonical(wellFormed text: String) -> String? {
        let utf8 = text.utf8
        guard utf8.count == 36 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 36)
        for (index, byte) in utf8.enumerated() {
            let hyphenSlot = index == 8 || index == 13 || index == 18 || index == 23  // hyphenPositions, 0-based
            switch byte {
            case UInt8(ascii: "-"):
                guard hyphenSlot else { return nil }
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"):
                guard !hyphenSlot else { return nil }
            default:
                return nil
            }
            bytes[index] = byte | 0x20  // lowercase; '-' and digits already have the bit
        }
        guard bytes[versionPosition - 1] == UInt8(ascii: "4"),
            [UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "a"), UInt8(ascii: "b")].contains(bytes[variantPosition - 1])
        else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    public var description: String { text }

    public static func < (lhs: KVKey, rhs: KVKey) -> Bool { lhs.text < rhs.text }

    /// 1-based positions of the four hyphens in 8-4-4-4-12.
    static let hyphenPositions: Set<Int> = [9, 14, 19, 24]
    /// 1-based position of the version nibble (the first digit of the third group).
    static let versionPosition = 15
    /// 1-based position of the variant nibble (the first digit of the fourth group).
    static let variantPosition = 20
}

/// Why a text is not a key. `description` is the message clients get with return code 3
/// (bad_arguments); positions in it are 1-based character positions.
public enum KeyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The argument was not a MessagePack string; `type` names what it was ("integer", "bin", "nil", …).
    case notAString(type: String)
    /// The empty string.
    case empty
    /// Not 36 characters long.
    case length(Int)
    /// A character other than `-` where 8-4-4-4-12 puts a hyphen.
    case missingHyphen(position: Int, found: Character)
    /// A character other than 0-9, a-f, A-F where a hex digit belongs.
    case notHex(position: Int, found: Character)
    /// The version nibble is not 4 (lowercase).
    case version(Character)
    /// The variant nibble is not 8, 9, a or b (lowercase).
    case variant(Character)

    public var description: String {
        let prefix = "key must be a UUID4 like \(KVKey.example)"
        switch self {
        case .notAString(let type): return "\(prefix): got \(type), expected a string"
        case .empty: return "\(prefix): got an empty string"
        case .length(let count): return "\(prefix): got \(count) characters, expected 36"
        case .missingHyphen(let position, let found):
            return "\(prefix): expected '-' at position \(position), got \(Self.show(found))"
        case .notHex(let position, let found):
            return "\(prefix): \(Self.show(found)) at position \(position) is not a hex digit"
        case .version(let nibble): return "\(prefix): version nibble is \(nibble), expected 4"
        case .variant(let nibble): return "\(prefix): variant nibble is \(nibble), expected 8, 9, a or b"
        }
    }

    /// A character quoted, with anything unprintable (controls, combining marks, non-ASCII)
    /// shown as its code points so that the message itself stays readable.
    private static func show(_ character: Character) -> String {
        if character.isASCII, let scalar = character.unicodeScalars.first, scalar.value >= 0x20, scalar.value < 0x7f {
            return "'\(character)'"
        }
        return character.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true).leftPadded(to: 4) }
            .joined(separator: " ")
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
