extension APIDescription {
    /// The server side of the service as Swift: a protocol with one method per
    /// function, an enum of the func_ids, and `Handlers.register<Service>Service(_:)`,
    /// which decodes and checks the arguments before calling a method and
    /// encodes what it returns. `file` names the description in the notice on top.
    public func serviceSource(file: String) -> String {
        let lines = ["// " + generatedNotice(file), "", "import IProto", ""]
            + serviceProtocol + [""] + functionEnum + [""] + limits + registration
        return lines.joined(separator: "\n") + "\n"
    }

    private var serviceProtocol: [String] {
        var lines = [
            "/// The \(service) service: one method per function of its API description.",
            "/// Serve it with `Handlers.register\(service)Service(_:)`, which checks and decodes",
            "/// the arguments before a method runs; an `IProtoError` a method throws",
            "/// answers with that error's return code and message.",
            "public protocol \(service)Service: Sendable {",
        ]
        for (index, function) in functions.enumerated() {
            if index > 0 { lines.append("") }
            let returns = function.response.swiftReturnType.map { " -> " + $0 } ?? ""
            lines += function.docComment(indent: "    ")
            lines.append("    func \(function.method)(\(function.request.swiftParameters.joined(separator: ", "))) throws(IProtoError)\(returns)")
        }
        return lines + ["}"]
    }

    private var functionEnum: [String] {
        var lines = [
            "/// The \(service) service's functions by func_id.",
            "public enum \(service)Function: UInt32, CaseIterable, Sendable {",
        ]
        for function in functions {
            lines.append("    /// " + function.signature)
            lines.append("    case \(function.method) = \(function.swiftFuncID)")
        }
        lines += [
            "",
            "    /// The function's name in the API table, logs and metrics.",
            "    public var name: String {",
            "        switch self {",
        ]
        lines += functions.map { "        case .\($0.method): \"\($0.name)\"" }
        return lines + ["        }", "    }", "}"]
    }

    /// The arguments' limits as constants, so that code which checks them
    /// outside a request (a service's own API) has them from the description too.
    private var limits: [String] {
        var constants: [String] = []
        for function in functions {
            for argument in function.request {
                guard let name = argument.name else { continue }
                let stem = function.method + name.prefix(1).uppercased() + name.dropFirst()
                for (suffix, type, value) in argument.type.limitConstant {
                    constants.append("    /// `\(function.name)`'s `\(name)`: `\(argument.type.schema)`.")
                    constants.append("    public static let \(stem)\(suffix): \(type) = \(value)")
                }
            }
        }
        guard !constants.isEmpty else { return [] }
        return ["/// The \(service) service's argument limits, as its API description gives them.",
                "public enum \(service)Limits {"] + constants + ["}", ""]
    }

    private var registration: [String] {
        var lines = [
            "extension Handlers {",
            "    // Inlinable, so that a caller passing a concrete type gets a specialized",
            "    // copy: the handlers then call the service directly, not through a witness table.",
            "    /// Registers the \(service) service's functions, served by `service`.",
            "    @inlinable",
            "    public mutating func register\(service)Service(_ service: some \(service)Service) {",
        ]
        for function in functions {
            lines.append("        register(\(function.swiftFuncID), name: \"\(function.name)\") { request in")
            lines += function.handlerBody.map { "            " + $0 }
            lines.append("        }")
        }
        return lines + ["    }", "}"]
    }
}

extension APIFunction {
    /// Decodes the arguments, calls the service, encodes its result.
    fileprivate var handlerBody: [String] {
        let arguments = request.isEmpty
            ? "_ = try request.arguments(0)"
            : "var arguments = try request.arguments(\(request.count))"
        switch response.count {
        case 0:
            return [arguments] + serviceCall(prefix: "try ") + ["return .nil"]
        case 1:
            return [arguments] + serviceCall(prefix: "let result = try ") + ["return " + response[0].type.encoding("result")]
        default:
            let fields = response.enumerated().map { index, value in
                value.type.encoding("result." + (value.name ?? String(index)))
            }
            return [arguments] + serviceCall(prefix: "let result = try ") + ["return .array([\(fields.joined(separator: ", "))])"]
        }
    }

    /// The call of the service's method, decoding each argument where it is
    /// passed: Swift evaluates arguments left to right, which is their order
    /// in the body, and no local can shadow `service` or `arguments`.
    private func serviceCall(prefix: String) -> [String] {
        let arguments = request.map { "\($0.name!): \($0.type.decoding(from: "arguments", name: $0.name))" }
        if arguments.count > 1 || request.contains(where: \.type.isArray) {
            return ["\(prefix)service.\(method)("] + arguments.map { "    " + $0 }.joinedWithCommas() + [")"]
        }
        return ["\(prefix)service.\(method)(\(arguments.joined()))"]
    }
}

extension [String] {
    /// The lines with a comma after each but the last, as in a multi-line argument list.
    func joinedWithCommas() -> [String] {
        enumerated().map { $0.offset < count - 1 ? $0.element + "," : $0.element }
    }
}
