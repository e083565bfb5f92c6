/// RFC 9110's IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), for Last-Modified.
///
/// Computed from the seconds since 1970 with integer arithmetic: Foundation's
/// DateFormatter opened an ICU formatter on every call, 9 % of the gateway's CPU
/// on a GET of a 1 MiB file.
enum HTTPDate {
    private static let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The date `seconds` after 1970-01-01T00:00:00Z (fractions dropped, as the format has none).
    static func format(secondsSince1970 seconds: Double) -> String {
        let whole = Int64(seconds.rounded(.down))
        let (days, second) = whole.floorDivided(by: 86_400)
        let (year, month, day) = civil(daysSince1970: days)
        let weekday = weekdays[Int(days.floorDivided(by: 7).remainder)]
        return "\(weekday), \(twoDigits(day)) \(months[month - 1]) \(year) "
            + "\(twoDigits(Int(second / 3600))):\(twoDigits(Int(second / 60 % 60))):\(twoDigits(Int(second % 60))) GMT"
    }

    /// The proleptic Gregorian (year, month 1–12, day 1–31) of a day number, counted
    /// in 400-year eras that start on 1 March, so that leap days end each era's years.
    static func civil(daysSince1970 days: Int64) -> (year: Int64, month: Int, day: Int) {
        let shifted = days + 719_468  // days from 0000-03-01 to 1970-01-01
        let (era, dayOfEra) = shifted.floorDivided(by: 146_097)
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153  // 0 = March … 11 = February
        let day = Int(dayOfYear - (153 * shiftedMonth + 2) / 5 + 1)
        let month = Int(shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9)
        return (era * 400 + yearOfEra + (month <= 2 ? 1 : 0), month, day)
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}

extension Int64 {
    /// Quotient rounded down and the remainder that goes with it (never negative for a positive divisor).
    fileprivate func floorDivided(by divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        let remainder = self % divisor
        return remainder < 0 ? (self / divisor - 1, remainder + divisor) : (self / divisor, remainder)
    }
}
