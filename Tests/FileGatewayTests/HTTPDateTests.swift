import Foundation
import Testing

@testable import FileGateway

@Suite struct HTTPDateTests {
    /// Foundation's formatting of the same instant, which the hand-written one replaced.
    private static func reference(_ seconds: Double) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }

    @Test func knownDates() {
        #expect(HTTPDate.format(secondsSince1970: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(secondsSince1970: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")  // RFC 9110's example
        #expect(HTTPDate.format(secondsSince1970: 951_782_400.75) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDate.format(secondsSince1970: -1) == "Wed, 31 Dec 1969 23:59:59 GMT")
    }

    /// Month and year edges (leap days, century years) and many instants between 1900 and 2400.
    @Test func agreesWithFoundation() {
        var instants: [Double] = []
        for year in [1900, 1970, 1999, 2000, 2024, 2100, 2399] {
            for month in 1...12 {
                let start = DateComponents(calendar: Calendar(identifier: .gregorian), timeZone: TimeZone(identifier: "GMT"), year: year, month: month, day: 1)
                let seconds = start.date!.timeIntervalSince1970
                instants += [seconds, seconds - 1, seconds + 86_399]
            }
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 { instants.append(Double(Int64.random(in: -2_208_988_800...13_569_465_600, using: &generator))) }
        let mismatches = instants.filter { HTTPDate.format(secondsSince1970: $0) != Self.reference($0) }
        let agree = mismatches.isEmpty
        #expect(agree, "\(mismatches.count) instants differ, the first at \(Array(mismatches.prefix(5)))")
    }
}
