/// The part of an HTTP/1.x request the metrics endpoint reads: the request
/// line and the headers that decide what to answer and whether to keep the
/// connection. It serves one resource, so nothing else is kept.
struct HTTPRequestHead: Equatable {
    var method: String
    /// The request target without its query string.
    var path: String
    /// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0
    /// closes it unless `Connection: keep-alive`.
    var keepAlive: Bool
    /// A `Content-Length` above 0 or any `Transfer-Encoding`: the endpoint
    /// reads no bodies, so such a request is refused and its connection closed.
    var hasBody: Bool

    /// What the bytes received so far on a connection hold.
    enum Parsed: Equatable {
        /// No complete head yet, and fewer than the limit's bytes.
        case incomplete
        /// A head that took `length` bytes, blank line included.
        case head(HTTPRequestHead, length: Int)
        /// No complete head within the limit.
        case tooLarge
        /// Not HTTP/1.x.
        case malformed
    }

    /// Parses the head at the start of `bytes`, which may end anywhere. Lines
    /// end with CRLF or a bare LF; empty lines before the request line are
    /// skipped (RFC 9112 §2.2); at most `maxBytes` are looked at.
    static func parse(_ bytes: ArraySlice<UInt8>, maxBytes: Int) -> Parsed {
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = bytes.startIndex
        let end = min(bytes.endIndex, bytes.startIndex + maxBytes)
        var index = bytes.startIndex
        while index < end {
            if bytes[index] == UInt8(ascii: "\n") {
                var line = bytes[lineStart..<index]
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                lineStart = index + 1
                if !line.isEmpty {
                    lines.append(line)
                } else if !lines.isEmpty {
                    return interpret(lines).map { .head($0, length: lineStart - bytes.startIndex) } ?? .malformed
                }
            }
            index += 1
        }
        return bytes.count >= maxBytes ? .tooLarge : .incomplete
    }

    private static func interpret(_ lines: [ArraySlice<UInt8>]) -> HTTPRequestHead? {
        let parts = lines[0].split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[1].first == UInt8(ascii: "/") || parts[1] == [UInt8(ascii: "*")]
        else { return nil }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return nil }
        let target = parts[1]
        var head = HTTPRequestHead(
            method: String(decoding: parts[0], as: UTF8.self),
            path: String(decoding: target.prefix { $0 != UInt8(ascii: "?") }, as: UTF8.self),
            keepAlive: version == "HTTP/1.1",
            hasBody: false)
        for line in lines.dropFirst() {
            // A line starting with white space continues the previous one (obsolete folding, refused by RFC 9112 §5.2).
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                  line.first != UInt8(ascii: " "), line.first != UInt8(ascii: "\t")
            else { return nil }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self)
                .withoutWhiteSpaceAround.lowercased()
            switch name {
            case "connection":
                let options = value.split(separator: ",").map { String($0).withoutWhiteSpaceAround }
                if options.contains("close") { head.keepAlive = false }
                if options.contains("keep-alive") && version == "HTTP/1.0" { head.keepAlive = true }
            case "content-length":
                guard let length = Int(value), length >= 0 else { return nil }
                if length > 0 { head.hasBody = true }
            case "transfer-encoding":
                head.hasBody = true
            default:
                break
            }
        }
        return head
    }
}

/// A complete HTTP/1.1 response, head and body, ready to send.
enum HTTPResponse {
    static func make(status: Int, reason: String, contentType: String = "text/plain; charset=utf-8",
                     extraHeaders: [String] = [], body: [UInt8], keepAlive: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        for header in extraHeaders { head += header + "\r\n" }
        head += keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n"
        return Array(head.utf8) + body
    }

    /// A short error response whose body is `reason` on a line.
    static func error(status: Int, reason: String, extraHeaders: [String] = [], keepAlive: Bool) -> [UInt8] {
        make(status: status, reason: reason, extraHeaders: extraHeaders, body: Array("\(reason)\n".utf8),
             keepAlive: keepAlive)
    }
}

extension String {
    /// Without the spaces and tabs HTTP allows around header values and list elements.
    fileprivate var withoutWhiteSpaceAround: String {
        let isWhiteSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(drop(while: isWhiteSpace).reversed().drop(while: isWhiteSpace).reversed())
    }
}
