import Foundation

/// A `Range: bytes=…` request header, as RFC 9110 §14.1.2 defines it for one
/// range: `bytes=first-last`, `bytes=first-` or `bytes=-suffix`. Several
/// ranges, other units or a malformed header are ignored (the whole file is
/// sent, as the RFC allows); a range wholly past the end is unsatisfiable (416).
public enum ByteRange: Equatable, Sendable {
    case whole
    case partial(Range<Int64>)
    case unsatisfiable

    public static func parse(_ header: String?, size: Int64) -> ByteRange {
        guard let header, header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash], last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = Int64(last), suffix >= 0 else { return .whole }
            guard suffix > 0, size > 0 else { return .unsatisfiable }
            return .partial(max(size - suffix, 0)..<size)
        }
        guard let start = Int64(first), start >= 0 else { return .whole }
        let end: Int64
        if last.isEmpty {
            end = size - 1
        } else {
            guard let value = Int64(last), value >= start else { return .whole }
            end = min(value, size - 1)
        }
        guard start < size else { return .unsatisfiable }
        return .partial(start..<(end + 1))
    }
}
