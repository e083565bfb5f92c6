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
