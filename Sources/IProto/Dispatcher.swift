/// Turns a request into a return code and a response body.
struct Dispatcher: Sendable {
    let handlers: [UInt32: Handlers.Handler]
    /// Function names for metrics and logs.
    let names: [UInt32: String]

    init(_ handlers: Handlers) {
        self.handlers = handlers.table
        self.names = handlers.names
    }

    /// Runs the handler for `request`, encoding the response body into `writer`.
    func respond(to request: Request, into writer: inout MessagePackWriter) -> ReturnCode {
        guard let handler = handlers[request.funcID] else {
            writer.writeString("unknown function 0x\(hex(request.funcID))")
            return .unknownFunction
        }
        do {
            let value = try handler(request)
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
