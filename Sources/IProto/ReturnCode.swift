import CIProtoCore

/// The `return_code` of a response: 0 for success, anything else names an error.
///
/// The protocol's codes (1…255) are defined once, in the C core's header,
/// because the core answers some requests itself. Services define their own
/// codes from ``firstServiceCode`` up. docs/protocol.md is the full table.
public struct ReturnCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    private init(_ core: iproto_return_code) { rawValue = core.rawValue }

    public static let ok = ReturnCode(IPROTO_RC_OK)
    /// No handler is registered for the request's func_id.
    public static let unknownFunction = ReturnCode(IPROTO_RC_UNKNOWN_FUNCTION)
    /// The body is not valid MessagePack (truncated, or a byte that never starts a value).
    public static let malformedBody = ReturnCode(IPROTO_RC_MALFORMED_BODY)
    /// Valid MessagePack, but the wrong number or types of arguments.
    public static let badArguments = ReturnCode(IPROTO_RC_BAD_ARGUMENTS)
    /// An integer argument outside the range the function accepts.
    public static let outOfRange = ReturnCode(IPROTO_RC_OUT_OF_RANGE)
    /// A string or binary argument longer than the function accepts.
    public static let tooLong = ReturnCode(IPROTO_RC_TOO_LONG)
    /// `body_length` exceeds the server's limit; the core closes the connection after replying.
    public static let bodyTooLarge = ReturnCode(IPROTO_RC_BODY_TOO_LARGE)
    /// The client sent requests faster than its rate limit.
    public static let rateLimited = ReturnCode(IPROTO_RC_RATE_LIMITED)
    /// The server is shutting down and does not run new requests.
    public static let shuttingDown = ReturnCode(IPROTO_RC_SHUTTING_DOWN)
    /// A handler failed with an error that is not an ``IProtoError``.
    public static let internalError = ReturnCode(IPROTO_RC_INTERNAL_ERROR)
    /// An administrative function called from an address outside ``Configuration/adminFrom``.
    public static let permissionDenied = ReturnCode(IPROTO_RC_PERMISSION_DENIED)

    /// Codes below this are the protocol's; services number theirs from here.
    public static let firstServiceCode: UInt32 = 0x100

    public var description: String { "\(rawValue)" }

    /// The protocol code's name as in docs/protocol.md (`bad_arguments`); nil for service codes.
    public var name: String? {
        switch self {
        case .ok: "ok"
        case .unknownFunction: "unknown_function"
        case .malformedBody: "malformed_body"
        case .badArguments: "bad_arguments"
        case .outOfRange: "out_of_range"
        case .tooLong: "too_long"
        case .bodyTooLarge: "body_too_large"
        case .rateLimited: "rate_limited"
        case .shuttingDown: "shutting_down"
        case .internalError: "internal_error"
        case .permissionDenied: "permission_denied"
        default: nil
        }
    }

    /// For codes that mean the client broke the protocol or the API's rules,
    /// the kind of violation (a metric label); nil otherwise.
    public var violation: String? {
        switch self {
        case .unknownFunction, .malformedBody, .badArguments, .outOfRange, .tooLong, .bodyTooLarge: name
        default: nil
        }
    }
}

/// An error a handler throws to answer with a non-zero `return_code` and a
/// MessagePack string explaining it.
public struct IProtoError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: ReturnCode
    public var message: String

    public init(_ code: ReturnCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(message) (return code \(code.rawValue))" }
}

extension IProtoError {
    /// Code 4 with the message every range check uses: "index 1000 is out of range 0...999".
    public static func outOfRange(_ subject: String, _ value: some CustomStringConvertible,
                                  _ range: ClosedRange<Int>) -> IProtoError {
        IProtoError(.outOfRange, "\(subject) \(value) is out of range \(range.lowerBound)...\(range.upperBound)")
    }

    /// Code 5 with the message every length check uses: "value of 257 bytes exceeds 256 bytes".
    public static func tooLong(_ subject: String, length: Int, limit: Int, unit: String = "bytes") -> IProtoError {
        IProtoError(.tooLong, "\(subject) of \(length) \(unit) exceeds \(limit) \(unit)")
    }
}
