import CMsgPuck

// The only place where MessagePack bytes are touched through pointers. msgpuck's
// mp_decode_* trust their input, so every call here is preceded by the type
// check and the matching mp_check_* bounds check; 0xc1 (never used) is refused
// up front because msgpuck classifies it as MP_EXT.

/// Decodes the MessagePack value header that starts at `offset` in `bytes`.
///
/// Scalars are decoded whole. For strings, binaries and extensions the token
/// carries the payload's byte range, which is checked to lie inside `bytes`.
/// For arrays and maps it carries the element count; the elements follow.
func decodeMessagePackToken(
    _ bytes: [UInt8], at offset: Int
) throws(MessagePackError) -> (token: MessagePackToken, next: Int) {
    let result: Result<(MessagePackToken, Int), MessagePackError> = bytes.withUnsafeBytes { raw in
        guard offset < raw.count, let base = raw.baseAddress?.assumingMemoryBound(to: CChar.self) else {
            return .failure(.truncated)
        }
        let start = base + offset
        let end = base + raw.count
        if raw[offset] == 0xc1 { return .failure(.invalidByte(0xc1)) }
        var cursor: UnsafePointer<CChar>? = UnsafePointer(start)

        func checked(_ missing: Int) -> Bool { missing <= 0 }
        func position() -> Int { cursor! - UnsafePointer(base) }
        /// The payload that follows a length header, if it fits in the buffer.
        func payload(_ length: UInt32) -> Range<Int>? {
            let from = position()
            guard Int(length) <= raw.count - from else { return nil }
            return from..<from + Int(length)
        }

        switch mp_typeof(start.pointee) {
        case MP_NIL:
            guard checked(mp_check_nil(start, end)) else { return .failure(.truncated) }
            mp_decode_nil(&cursor)
            return .success((.nil, position()))
        case MP_BOOL:
            guard checked(mp_check_bool(start, end)) else { return .failure(.truncated) }
            let value = mp_decode_bool(&cursor)
            return .success((.bool(value), position()))
        case MP_UINT:
            guard checked(mp_check_uint(start, end)) else { return .failure(.truncated) }
            let value = mp_decode_uint(&cursor)
            return .success((.uint(value), position()))
        case MP_INT:
            guard checked(mp_check_int(start, end)) else { return .failure(.truncated) }
            let value = mp_decode_int(&cursor)
            return .success((.int(value), position()))
        case MP_FLOAT:
            guard checked(mp_check_float(start, end)) else { return .failure(.truncated) }
            let value = mp_decode_float(&cursor)
            return .success((.double(Double(value)), position()))
        case MP_DOUBLE:
            guard checked(mp_check_double(start, end)) else { return .failure(.truncated) }
            let value = mp_decode_double(&cursor)
            return .success((.double(value), position()))
        case MP_STR:
            guard checked(mp_check_strl(start, end)) else { return .failure(.truncated) }
            guard let range = payload(mp_decode_strl(&cursor)) else { return .failure(.truncated) }
            return .success((.string(range), range.upperBound))
        case MP_BIN:
            guard checked(mp_check_binl(start, end)) else { return .failure(.truncated) }
            guard let range = payload(mp_decode_binl(&cursor)) else { return .failure(.truncated) }
            return .success((.binary(range), range.upperBound))
        case MP_ARRAY:
            guard checked(mp_check_array(start, end)) else { return .failure(.truncated) }
            let count = mp_decode_array(&cursor)
            return .success((.array(count: Int(count)), position()))
        case MP_MAP:
            guard checked(mp_check_map(start, end)) else { return .failure(.truncated) }
            let count = mp_decode_map(&cursor)
            return .success((.map(count: Int(count)), position()))
        default:
            return decodeExtension(raw, at: offset)
        }
    }
    return try result.get()
}

/// msgpuck 1.0.3 has no extension decoder: fixext 1…16 and ext 8/16/32 are read by hand.
private func decodeExtension(
    _ raw: UnsafeRawBufferPointer, at offset: Int
) -> Result<(MessagePackToken, Int), MessagePackError> {
    let marker = raw[offset]
    var headerSize = 2  // marker + type
    let length: Int
    switch marker {
    case 0xd4...0xd8: length = 1 << Int(marker - 0xd4)
    case 0xc7, 0xc8, 0xc9:
        let sizeBytes = 1 << Int(marker - 0xc7)
        headerSize += sizeBytes
        guard raw.count - offset >= headerSize else { return .failure(.truncated) }
        length = (0..<sizeBytes).reduce(0) { $0 << 8 | Int(raw[offset + 1 + $1]) }
    default:
        return .failure(.invalidByte(marker))
    }
    let from = offset + headerSize
    guard raw.count - offset >= headerSize, length <= raw.count - from else { return .failure(.truncated) }
    return .success((.extension(from..<from + length), from + length))
}

/// Appends one msgpuck-encoded header or scalar of at most `maxSize` bytes.
func appendEncoded(
    to bytes: inout [UInt8], maxSize: Int,
    _ encode: (UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<CChar>?
) {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: maxSize) { scratch in
        let start = scratch.baseAddress!
        let end = encode(start)!
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: start, count: end - start))
    }
}

extension MessagePackWriter {
    mutating func encodeNil() { appendEncoded(to: &bytes, maxSize: 1) { mp_encode_nil($0) } }
    mutating func encodeBool(_ value: Bool) { appendEncoded(to: &bytes, maxSize: 1) { mp_encode_bool($0, value) } }
    mutating func encodeUInt(_ value: UInt64) { appendEncoded(to: &bytes, maxSize: 9) { mp_encode_uint($0, value) } }
    /// msgpuck's mp_encode_int is for negative values only.
    mutating func encodeInt(_ value: Int64) {
        if value >= 0 { encodeUInt(UInt64(value)) } else { appendEncoded(to: &bytes, maxSize: 9) { mp_encode_int($0, value) } }
    }
    mutating func encodeDouble(_ value: Double) { appendEncoded(to: &bytes, maxSize: 9) { mp_encode_double($0, value) } }
    mutating func encodeStringHeader(_ length: UInt32) { appendEncoded(to: &bytes, maxSize: 5) { mp_encode_strl($0, length) } }
    mutating func encodeBinaryHeader(_ length: UInt32) { appendEncoded(to: &bytes, maxSize: 5) { mp_encode_binl($0, length) } }
    mutating func encodeArrayHeader(_ count: UInt32) { appendEncoded(to: &bytes, maxSize: 5) { mp_encode_array($0, count) } }
    mutating func encodeMapHeader(_ count: UInt32) { appendEncoded(to: &bytes, maxSize: 5) { mp_encode_map($0, count) } }
}
