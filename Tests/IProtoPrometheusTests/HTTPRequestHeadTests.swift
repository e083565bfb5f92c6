@testable import IProtoPrometheus
import Testing

/// The endpoint's request parser, fed byte buffers directly: whole, split, oversized and garbage heads.
@Suite struct HTTPRequestHeadTests {
    private func parse(_ text: String, maxBytes: Int = 8192) -> HTTPRequestHead.Parsed {
        HTTPRequestHead.parse(Array(text.utf8)[...], maxBytes: maxBytes)
    }

    @Test func aScrapeRequestIsReadWithItsLength() {
        let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:8088\r\nAccept: text/plain\r\n\r\n"
        #expect(parse(request + "GET /next") == .head(
            HTTPRequestHead(method: "GET", path: "/metrics", keepAlive: true, hasBody: false),
            length: request.utf8.count))
    }

    @Test func everyPrefixOfAHeadIsIncomplete() {
        let request = Array("GET /metrics?x=1 HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        for end in 0..<request.count {
            #expect(HTTPRequestHead.parse(request[..<end], maxBytes: 8192) == .incomplete, "prefix of \(end) bytes")
        }
        #expect(HTTPRequestHead.parse(request[...], maxBytes: 8192)
            == .head(HTTPRequestHead(method: "GET", path: "/metrics", keepAlive: true, hasBody: false),
                     length: request.count))
    }

    @Test func bareLineFeedsAndLeadingBlankLinesAreAccepted() {
        let request = "\r\n\nGET /metrics HTTP/1.0\nConnection: Keep-Alive\n\n"
        #expect(parse(request) == .head(HTTPRequestHead(method: "GET", path: "/metrics", keepAlive: true, hasBody: false),
                                        length: request.utf8.count))
    }

    @Test func connectionHeaderDecidesKeepAlive() {
        func keepAlive(_ version: String, _ header: String?) -> Bool? {
            guard case .head(let head, _) = parse("GET / \(version)\r\n" + (header.map { "Connection: \($0)\r\n" } ?? "") + "\r\n")
            else { return nil }
            return head.keepAlive
        }
        #expect(keepAlive("HTTP/1.1", nil) == true)
        #expect(keepAlive("HTTP/1.1", "close") == false)
        #expect(keepAlive("HTTP/1.1", " Upgrade, CLOSE ") == false)
        #expect(keepAlive("HTTP/1.0", nil) == false)
        #expect(keepAlive("HTTP/1.0", "keep-alive") == true)
    }

    @Test func aBodyIsNoticed() {
        let empty = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        #expect(parse(empty) == .head(HTTPRequestHead(method: "POST", path: "/metrics", keepAlive: true, hasBody: false),
                                      length: empty.utf8.count))
        for header in ["Content-Length: 5", "Transfer-Encoding: chunked"] {
            guard case .head(let head, _) = parse("GET /metrics HTTP/1.1\r\n\(header)\r\n\r\n") else {
                Issue.record("no head with \(header)")
                continue
            }
            #expect(head.hasBody, "\(header)")
        }
    }

    @Test func aHeadWithoutItsBlankLineWithinTheLimitIsTooLarge() {
        let long = "GET /metrics HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: 200)
        #expect(parse(long, maxBytes: 100) == .tooLarge)
        #expect(parse(long + "\r\n\r\n", maxBytes: 100) == .tooLarge)
        #expect(HTTPRequestHead.parse(Array(long.utf8.prefix(99))[...], maxBytes: 100) == .incomplete)
        #expect(parse("\r\n" + String(repeating: "\r\n", count: 60), maxBytes: 100) == .tooLarge)
    }

    @Test func garbageIsMalformed() {
        for garbage in ["\u{16}\u{03}\u{01}\u{02}\n\n", "GET /metrics\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n",
                        "GET  /metrics HTTP/1.1\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
                        "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", "GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n",
                        "GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
                        "GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n"] {
            #expect(parse(garbage) == .malformed, "\(garbage.debugDescription)")
        }
    }
}
