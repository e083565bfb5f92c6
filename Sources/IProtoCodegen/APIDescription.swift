/// One service's API as its description file (`*.iproto-api`) gives it: the
/// assignment's table with a Swift method name per function.
public struct APIDescription: Equatable, Sendable {
    /// The service's name, an UpperCamelCase Swift identifier (`Storage`).
    public var service: String
    /// The functions in the order the file lists them.
    public var functions: [APIFunction]

    public init(service: String, functions: [APIFunction]) {
        self.service = service
        self.functions = functions
    }
}

/// One row of the API table.
public struct APIFunction: Equatable, Sendable {
    public var funcID: UInt32
    /// The name in the API table, logs and metrics (`STORAGE_REPLACE`).
    public var name: String
    /// The Swift method serving it and calling it (`replace`).
    public var method: String
    /// The request's values; empty for `<nil>`, which takes no arguments.
    public var request: [APIValue]
    /// The response's values; empty for `<nil>`.
    public var response: [APIValue]
    /// What the function does, one line.
    public var summary: String

    public init(funcID: UInt32, name: String, method: String, request: [APIValue], response: [APIValue], summary: String) {
        self.funcID = funcID
        self.name = name
        self.method = method
        self.request = request
        self.response = response
        self.summary = summary
    }
}

/// One value of a request or response: a name (required for arguments) and a type.
public struct APIValue: Equatable, Sendable {
    public var name: String?
    public var type: APIType

    public init(_ name: String?, _ type: APIType) {
        self.name = name
        self.type = type
    }
}

/// A value's MessagePack type with its limits, and so its Swift type.
public indirect enum APIType: Equatable, Sendable {
    case bool
    /// An `Int`, optionally limited to `range` (`int(0...999)`).
    case int(range: ClosedRange<Int>?)
    case uint
    /// A MessagePack float 32 or float 64, as a `Double`.
    case double
    /// A MessagePack string as a `String`, invalid UTF-8 repaired (`str(256)`).
    case string(maxBytes: Int?)
    /// A MessagePack string as its exact bytes, `[UInt8]` (`strbytes(256)`).
    case stringBytes(maxBytes: Int?)
    /// MessagePack binary data as `[UInt8]` (`bin(16)`).
    case binary(maxBytes: Int?)
    /// Any one MessagePack value as a `MessagePackValue`, optionally of at
    /// most `maxBytes` bytes encoded (`value(64)`).
    case value(maxBytes: Int?)
    /// The wrapped type or nil (`int?`).
    case optional(APIType)
    /// A MessagePack array, optionally of at most `maxCount` elements (`[int](8)`).
    case array(APIType, maxCount: Int?)
}
