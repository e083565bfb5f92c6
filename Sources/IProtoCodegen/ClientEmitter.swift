extension APIDescription {
    /// The client side of the service as Swift: an enum of prepared calls, one
    /// per function, encoded once for any transport (`\(service)Calls`), and
    /// typed async methods in an extension of `IProtoClient` that send them.
    /// `insideClientModule` leaves out `import IProtoClient`, for code compiled
    /// into that module itself.
    public func clientSource(file: String, insideClientModule: Bool) -> String {
        var lines = ["// " + generatedNotice(file), "", "import IProto"]
        if !insideClientModule { lines.append("import IProtoClient") }
        lines += [
            "",
            "/// The \(service) service's calls, encoded and ready for any transport:",
            "/// `IProtoClient`'s methods below send them over its connections,",
            "/// `BlockingCalls` from one thread. A reply's non-zero return code is",
            "/// thrown as `ClientError.server`, a reply that does not match the API",
            "/// description as `ClientError.protocolViolation`.",
            "public enum \(service)Calls {",
        ]
        for (index, function) in functions.enumerated() {
            if index > 0 { lines.append("") }
            lines += function.preparedCall.map { "    " + $0 }
        }
        lines += [
            "}",
            "",
            "/// Typed calls of the \(service) service's functions (``\(service)Calls``).",
            "extension IProtoClient {",
        ]
        for (index, function) in functions.enumerated() {
            if index > 0 { lines.append("") }
            lines += function.clientMethod(service: service).map { "    " + $0 }
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }
}

extension APIFunction {
    private var replyType: String { response.swiftReturnType ?? "Void" }

    /// `static func NAME(ARGS) -> PreparedCall<REPLY>`: the encoded request and its reply's decoder.
    fileprivate var preparedCall: [String] {
        let parameters = request.swiftParameters.joined(separator: ", ")
        var call = argumentLines
        call[call.count - 1] += " { (values: inout Arguments) throws(IProtoError) -> \(replyType) in"
        return docComment(indent: "") + ["public static func \(method)(\(parameters)) -> PreparedCall<\(replyType)> {"]
            + call.map { "    " + $0 } + replyDecoding.map { "        " + $0 } + ["    }", "}"]
    }

    /// The async method sending the prepared call through the client's connections.
    fileprivate func clientMethod(service: String) -> [String] {
        let parameters = (request.swiftParameters + ["timeout: Duration? = nil"]).joined(separator: ", ")
        let returns = response.swiftReturnType.map { " -> " + $0 } ?? ""
        let arguments = request.map { "\($0.name!): \($0.name!)" }.joined(separator: ", ")
        return docComment(indent: "") + [
            "public func \(method)(\(parameters)) async throws(ClientError)\(returns) {",
            "    try await call(\(service)Calls.\(method)(\(arguments)), timeout: timeout)",
            "}",
        ]
    }

    /// `PreparedCall(FUNC_ID, name: NAME, arguments: [...])`, each argument on its line when there are several.
    private var argumentLines: [String] {
        let encoded = request.map { $0.type.encoding($0.name!) }
        let head = "PreparedCall(\(swiftFuncID), name: \"\(name)\", arguments: ["
        switch encoded.count {
        case 0, 1:
            // A lone array (or any value, which may be one) goes in the array
            // body form: sent bare, a one-element array would be read as that
            // form, its element as the argument.
            let lone = request.first?.type.mayBeArray == true ? ".array([\(encoded[0])])" : encoded.joined()
            return [head + lone + "])"]
        default:
            return [head] + encoded.map { "    \($0)," } + ["])"]
        }
    }

    /// Reads the reply's values from `values`: one value, or one array of several.
    private var replyDecoding: [String] {
        switch response.count {
        case 0:
            return ["try values.nil()"]
        case 1:
            return ["try " + response[0].type.decoding(from: "values", name: response[0].name, reply: true)]
        default:
            let fields = response.map { ($0.name.map { $0 + ": " } ?? "") + $0.type.decoding(from: "values", name: $0.name, reply: true) }
            return [
                "guard try values.arrayCount() == \(response.count) else {",
                "    throw IProtoError(.badArguments, \"expected an array of \(response.count) values\")",
                "}",
                "return try (\(fields.joined(separator: ", ")))",
            ]
        }
    }
}
