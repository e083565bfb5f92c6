import ArgumentParser

/// Seconds as a duration of whole milliseconds. 0 means disabled, so a positive value
/// that would round to 0 is refused rather than silently disabling the limit.
public func duration(_ seconds: Double, _ flag: String) throws -> Duration {
    guard seconds.isFinite, seconds >= 0, seconds < 1e9 else {
        throw ValidationError("\(flag) must be a number of seconds from 0 to 1e9, got \(seconds)")
    }
    guard seconds == 0 || seconds >= 0.001 else {
        throw ValidationError("\(flag) must be 0 (disabled) or at least 0.001 s, got \(seconds)")
    }
    return .milliseconds(Int64((seconds * 1000).rounded()))
}

/// Splits "HOST:PORT" or "[V6]:PORT".
public func parseListenAddress(_ text: String, flag: String = "--listen") throws -> (host: String, port: UInt16) {
    guard let colon = text.lastIndex(of: ":") else {
        throw ValidationError("\(flag) must be HOST:PORT, got \"\(text)\"")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty, let port = UInt16(text[text.index(after: colon)...]) else {
        throw ValidationError("\(flag) must be HOST:PORT with a port 0-65535, got \"\(text)\"")
    }
    return (host, port)
}

/// A size in bytes: digits, optionally followed by K, M, G or T (powers of 1024,
/// an optional "iB" or "B" after them): "1048576", "64M", "10GiB".
public func parseByteSize(_ text: String, flag: String) throws -> Int {
    let units: [(String, Int)] = [("T", 40), ("G", 30), ("M", 20), ("K", 10), ("", 0)]
    var body = Substring(text.uppercased())
    for suffix in ["IB", "B"] where body.hasSuffix(suffix) && body.count > suffix.count {
        body = body.dropLast(suffix.count)
        break
    }
    for (unit, shift) in units where body.hasSuffix(unit) {
        let digits = body.dropLast(unit.count)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = Int(digits), value >= 0,
            value <= Int.max >> shift
        else { break }
        return value << shift
    }
    throw ValidationError("\(flag) must be a size in bytes (digits, optionally with K, M, G or T), got \"\(text)\"")
}
