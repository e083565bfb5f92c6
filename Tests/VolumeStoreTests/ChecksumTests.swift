import Durability
import XCTest

/// The stored formats' CRC-32 is zlib's (gzip's): ISA-L computes it now, so the
/// standard check value and continuation must match what zlib gave, or every
/// journal and volume written before would read as damaged.
final class ChecksumTests: XCTestCase {
    func test_the_check_value_and_continuation_are_zlibs() {
        XCTAssertEqual(Checksum.crc32(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(Checksum.crc32([]), 0)
        XCTAssertEqual(Checksum.crc32(Array("The quick brown fox jumps over the lazy dog".utf8)), 0x414F_A339)
        let whole = Array("123456789".utf8)
        let first = Checksum.crc32(whole, 0..<4)
        XCTAssertEqual(Checksum.crc32(whole, 4..<9, continuing: first), 0xCBF4_3926)
    }
}
