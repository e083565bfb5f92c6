/// A file's name: 1–1024 bytes of UTF-8, `/` allowed as a path separator, but
/// no empty, `.` or `..` segment and no NUL (docs/file-store.md, "Names").
public struct FileName: Hashable, Sendable, CustomStringConvertible {
    public static let maxBytes = 1024
    public let text: String
    public var description: String { text }

    public struct Invalid: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Checks `bytes` (the URL path after `/files/`, percent-decoded).
    public init(bytes: [UInt8]) throws(Invalid) {
        guard !bytes.isEmpty else { throw Invalid(description: "the file name is missing") }
        guard bytes.count <= Self.maxBytes else {
            throw Invalid(description: "the file name is \(bytes.count) bytes; at most \(Self.maxBytes) are allowed")
        }
        guard !bytes.contains(0) else { throw Invalid(description: "the file name contains a NUL byte") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw Invalid(description: "the file name is not valid UTF-8")
        }
        for segment in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if segment.isEmpty { throw Invalid(description: "the file name has an empty path segment (a leading, trailing or doubled /)") }
            if segment.elementsEqual([UInt8(ascii: ".")]) || segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                throw Invalid(description: "the file name has a \"\(String(decoding: segment, as: UTF8.self))\" path segment")
            }
        }
        self.text = text
    }

    public init(_ text: String) throws(Invalid) { try self.init(bytes: Array(text.utf8)) }

    /// Decodes `%XX` escapes of a URL path; nil when an escape is malformed.
    public static func percentDecoded(_ path: Substring) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(path.utf8.count)
        var iterator = path.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
