/// Turns a request into a return code and a response body.
///
/// Functions are kept in func_id order and found by binary search: their
/// position is also the index of their per-worker metric handles, so a
/// request costs no hashing.
struct Dispatcher: Sendable {
    private let ids: [UInt32]
    private let handlers: [Handlers.Handler]
    /// Function names for metrics and logs, by function index.
    let names: [String]

    init(_ handlers: Handlers) {
        ids = handlers.funcIDs
        self.handlers = ids.map { handlers.table[$0]! }
        names = ids.map { handlers.names[$0]! }
    }

    /// The number of registered functions; valid indices are 0..<count.
    var count: Int { ids.count }

    /// The index of `funcID`, or nil for an unknown function.
    func index(of funcID: UInt32) -> Int? {
        var low = 0, high = ids.count
        while low < high {
            let middle = (low + high) / 2
            if ids[middle] < funcID { low = middle + 1 } else { high = middle }
        }
        return low < ids.count && ids[low] == funcID ? low : nil
    }

    /// Runs the handler for `request`, encoding the response body into `writer`.
    func respond(to request: Request, into writer: inout MessagePackWriter) -> ReturnCode {
        respond(to: request, function: index(of: request.funcID), into: &writer)
    }

    /// As above, with the function already looked up (nil: unknown).
    func respond(to request: Request, function: Int?, into writer: inout MessagePackWriter) -> ReturnCode {
        guard let function else {
            writer.writeString("unknown function 0x\(hex(request.funcID))")
            return .unknownFunction
        }
        do {
            let value = try handlers[function](request)
            writer.write(value)
            return .ok
        } catch let error as IProtoError {
            writer.reset()
            writer.writeString(error.message)
            return error.code
        } catch {
            writer.reset()
            writer.writeString("internal error: \(error)")
            return .internalError
        }
    }
}

func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}
