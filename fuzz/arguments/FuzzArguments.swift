// libFuzzer target for request-argument decoding.
//
// The input is a stream of request frames in the wire format, so
// Tests/Fixtures/*.bin are seeds as they are and a crasher is a fixture as it
// is. Each complete frame, up to the first over iprotod's default --max-body,
// takes the path the bridge gives a body once the core hands it over: the copy
// into the worker's buffer, then WorkerContext.serve (admission, dispatch,
// Request.arguments, MessagePackReader over msgpuck in MsgPuck.swift, the
// generated storage decoding, the storage). The storage starts empty and
// read-write for every input, as a fresh iprotod does in Tests/Fixtures/run.sh.
//
// Each reply is checked against a model of docs/protocol.md (sections 2-4)
// kept here, with its own MessagePack decoder: the return code, the body of a
// success, an error body being one string; after the input, the storage's state
// and all 1000 slots must be what the model says, so nothing half-executes.
// One more function, `probe`, reaches the argument readers the storage does
// not use; its replies are only checked for a plausible code and body.
//
// Built only by fuzz/run.sh (IPROTO_FUZZ adds the target to Package.swift),
// with AddressSanitizer and libFuzzer's coverage instrumentation.

@testable import IProto
import IProtoStorage
import Logging

/// libFuzzer's callback: one input.
func fuzzArguments(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Harness.shared.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// One worker's request path over one storage, built once; each input leaves the storage as it found it.
final class Harness: Sendable {
    static let shared = Harness()

    /// iprotod's default; the core answers a larger body_length itself and closes.
    static let maxBody = Configuration().maxBodyBytes

    let storage = Storage()
    let worker: WorkerContext

    /// func_id of the probe: its body's first two bytes are a little-endian program, the rest
    /// the arguments. Bits 0-1 are the argument count; bits 2-5, 6-9 and 10-13 pick a read each.
    static let probe: UInt32 = 0x7f00_0001

    private init() {
        var handlers = Handlers()
        handlers.registerStorage(storage)
        handlers.register(Self.probe) { request in
            guard request.body.count >= 2 else { return .nil }
            let program = Int(request.body[0]) | Int(request.body[1]) << 8
            let body = Array(request.body.dropFirst(2))
            var arguments = try Request(funcID: request.funcID, requestID: request.requestID, body: body)
                .arguments(program & 3)
            for step in 0..<3 {
                switch program >> (2 + 4 * step) & 15 {
                case 0: _ = try arguments.int()
                case 1: _ = try arguments.int(in: -5...5)
                case 2: _ = try arguments.uint()
                case 3: _ = try arguments.bool()
                case 4: _ = try arguments.double()
                case 5: _ = try arguments.stringBytes(maxBytes: 4)
                case 6: _ = try arguments.string(name: "text")
                case 7: _ = try arguments.binary(maxBytes: 4)
                case 8: try arguments.nil()
                case 9: _ = try arguments.skipNil()
                case 10: _ = try arguments.arrayCount(maxCount: 2)
                case 11: _ = try arguments.value()
                case 12: _ = try arguments.value(maxBytes: 8, name: "doc")
                default: return .nil
                }
            }
            return .nil
        }
        var configuration = Configuration()
        configuration.rateLimit = 0  // admission depends on the clock; the model does not
        configuration.rateLimitPerIP = 0
        worker = WorkerContext(
            index: 0, dispatcher: Dispatcher(handlers), configuration: configuration, addressLimiter: nil,
            serverMetrics: ServerMetrics(prefix: configuration.metricsPrefix, workers: 1),
            logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    func run(_ input: [UInt8]) {
        var model = StorageModel()
        var connection = ConnectionState()
        connection.admin = true  // as from loopback, the default --admin-from
        var offset = 0
        var frame = 0
        while input.count - offset >= Framing.requestHeaderSize {
            let funcID = Framing.loadLittleEndian(input, at: offset)
            let length = Int(Framing.loadLittleEndian(input, at: offset + 4))
            let requestID = Framing.loadLittleEndian(input, at: offset + 8)
            let start = offset + Framing.requestHeaderSize
            guard length <= Self.maxBody, input.count - start >= length else { break }
            let body = start..<start + length
            defer {
                offset = body.upperBound
                frame += 1
            }
            input.withUnsafeBytes { worker.body.overwrite(with: UnsafeRawBufferPointer(rebasing: $0[body])) }
            let code = worker.serve(funcID: funcID, requestID: requestID, connection: &connection,
                                    peer: { "fuzz" }, startedAt: monotonicNanoseconds())
            let reply = worker.writer.bytes
            func fail(_ problem: String) -> Never {
                fatalError("frame \(frame) (func_id 0x\(hex(funcID)), body \(input[body].hexDigits())): \(problem), reply body \(reply.hexDigits())")
            }
            var decoder = ModelDecoder(reply)
            guard let replied = try? decoder.value(), decoder.isAtEnd else { fail("the reply body is not one MessagePack value") }
            if funcID == Self.probe {
                // Reading past the declared count is the handler's bug, so code 9 is right for it.
                let allowed: [ReturnCode] = [.ok, .malformedBody, .badArguments, .outOfRange, .tooLong, .internalError]
                if !allowed.contains(code) { fail("code \(code.rawValue) from the probe") }
                if code == .ok ? replied != .nil : !replied.isString { fail("a reply body that does not go with code \(code.rawValue)") }
                continue
            }
            let (expectedCode, expectedBody) = model.respond(funcID: funcID, body: Array(input[body]))
            if code != expectedCode { fail("code \(code.rawValue), the protocol says \(expectedCode.rawValue)") }
            if let expectedBody {
                if replied != expectedBody { fail("a wrong reply body") }
            } else if !replied.isString {
                fail("an error body that is not a string")
            }
        }
        if storage.state.rawValue != model.state.rawValue {
            fatalError("storage is \(storage.state.rawValue), the protocol says \(model.state.rawValue)")
        }
        try! storage.switchState(to: .readWrite)
        for index in Storage.indices {
            let stored = try! storage.read(index)
            if stored != model.slots[index] ?? [] {
                fatalError("slot \(index) holds \(stored.hexDigits()), the protocol says \((model.slots[index] ?? []).hexDigits())")
            }
            if !stored.isEmpty { try! storage.replace(index, with: []) }
        }
    }
}

/// A MessagePack value as far as the storage API tells values apart.
indirect enum ModelValue: Equatable {
    case `nil`
    case integer(Int128)
    case string([UInt8])
    /// Taken for a REPLACE value as a string is (docs/protocol.md).
    case binary([UInt8])
    case array([ModelValue])
    /// bool, float, ext or map: valid, but never an argument the storage accepts.
    case other

    var isString: Bool {
        if case .string = self { true } else { false }
    }
}

/// Decodes MessagePack from the specification, independently of the package's reader.
struct ModelDecoder {
    struct Malformed: Error {}

    /// Containers may nest this deep (docs/architecture.md, "MessagePack").
    static let maxNesting = 64

    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }

    private mutating func take(_ count: Int) throws(Malformed) -> ArraySlice<UInt8> {
        guard count <= bytes.count - offset else { throw Malformed() }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    /// A big-endian unsigned number of `size` bytes.
    private mutating func number(_ size: Int) throws(Malformed) -> UInt64 {
        try take(size).reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// A big-endian two's-complement number of `size` bytes.
    private mutating func signed(_ size: Int) throws(Malformed) -> Int128 {
        let raw = try number(size), bits = UInt64(size * 8)
        return bits == 64 ? Int128(Int64(bitPattern: raw)) : Int128(raw) - (raw >> (bits - 1) == 1 ? Int128(1) << bits : 0)
    }

    /// `enclosing` is how many containers hold this value.
    mutating func value(enclosing: Int = 0) throws(Malformed) -> ModelValue {
        let marker = UInt8(try number(1))
        let length: Int
        switch marker {
        case 0x00...0x7f: return .integer(Int128(marker))
        case 0xe0...0xff: return .integer(Int128(Int8(bitPattern: marker)))
        case 0xc0: return .nil
        case 0xc2, 0xc3: return .other
        case 0xcc...0xcf: return .integer(Int128(try number(1 << Int(marker - 0xcc))))
        case 0xd0...0xd3: return .integer(try signed(1 << Int(marker - 0xd0)))
        case 0xca: _ = try take(4); return .other
        case 0xcb: _ = try take(8); return .other
        case 0xa0...0xbf: return .string(Array(try take(Int(marker & 0x1f))))
        case 0xd9...0xdb: return .string(Array(try take(Int(try number(1 << Int(marker - 0xd9))))))
        case 0xc4...0xc6: return .binary(Array(try take(Int(try number(1 << Int(marker - 0xc4))))))
        case 0xc7...0xc9: _ = try take(Int(try number(1 << Int(marker - 0xc7))) + 1); return .other
        case 0xd4...0xd8: _ = try take(1 + 1 << Int(marker - 0xd4)); return .other
        case 0x90...0x9f: length = Int(marker & 0x0f)
        case 0xdc, 0xdd: length = Int(try number(marker == 0xdc ? 2 : 4))
        case 0x80...0x8f: length = 2 * Int(marker & 0x0f)
        case 0xde, 0xdf: length = 2 * Int(try number(marker == 0xde ? 2 : 4))
        default: throw Malformed()  // 0xc1
        }
        guard enclosing < Self.maxNesting else { throw Malformed() }
        var elements: [ModelValue] = []
        for _ in 0..<length { elements.append(try value(enclosing: enclosing + 1)) }
        return marker & 0xf0 == 0x90 || marker == 0xdc || marker == 0xdd ? .array(elements) : .other
    }
}

/// The storage as docs/protocol.md describes it, answering with a return code and,
/// on success, the reply body's value.
struct StorageModel {
    /// Named as `--initial-state` names them.
    enum State: String { case readWrite = "read-write", readOnly = "read-only", maintenance }

    var state = State.readWrite
    var slots: [Int: [UInt8]] = [:]

    mutating func respond(funcID: UInt32, body: [UInt8]) -> (ReturnCode, ModelValue?) {
        let switches: [UInt32: State] = [0x0001_0001: .readOnly, 0x0001_0002: .readWrite, 0x0001_0003: .maintenance]
        let replace: UInt32 = 0x0002_0001, read: UInt32 = 0x0002_0002
        guard switches[funcID] != nil || funcID == replace || funcID == read else { return (.unknownFunction, nil) }
        var decoder = ModelDecoder(body)
        var values: [ModelValue] = []
        do {
            while !decoder.isAtEnd { values.append(try decoder.value()) }
        } catch {
            return (.malformedBody, nil)
        }
        if let target = switches[funcID] {
            guard Self.arguments(values, 0) != nil else { return (.badArguments, nil) }
            state = target
            return (.ok, .nil)
        }
        guard let arguments = Self.arguments(values, funcID == replace ? 2 : 1),
              case .integer(let index) = arguments[0] else { return (.badArguments, nil) }
        guard (0...999).contains(index) else { return (.outOfRange, nil) }
        if funcID == read {
            return state == .maintenance ? (.storageMaintenance, nil) : (.ok, .string(slots[Int(index)] ?? []))
        }
        let value: [UInt8]
        switch arguments[1] {
        case .string(let bytes), .binary(let bytes): value = bytes
        default: return (.badArguments, nil)
        }
        guard value.count <= 256 else { return (.tooLong, nil) }
        switch state {
        case .readOnly: return (.storageReadOnly, nil)
        case .maintenance: return (.storageMaintenance, nil)
        case .readWrite:
            slots[Int(index)] = value
            return (.ok, .nil)
        }
    }

    /// The argument list a body of `values` stands for, if it holds `count` arguments.
    private static func arguments(_ values: [ModelValue], _ count: Int) -> [ModelValue]? {
        if values.count == 1, case .array(let elements) = values[0], elements.count == count { return elements }
        if values.count == count { return values }
        if count == 0, values == [.nil] { return [] }
        return nil
    }
}
