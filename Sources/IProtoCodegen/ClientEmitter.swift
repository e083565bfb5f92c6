extension APIDescription {
    /// The client side of the service as Swift: one typed method per function
    /// in an extension of `IProtoClient`. `insideClientModule` leaves out
    /// `import IProtoClient`, for code compiled into that module itself.
    public func clientSource(file: String, insideClientModule: Bool) -> String {
        var lines = ["// " + generatedNotice(file), "", "import IProto"]
        if !insideClientModule { lines.append("import IProtoClient") }
        lines += [
            "",
            "/// Typed calls of the \(service) service's functions. A non-zero return code",
            "/// is thrown as `ClientError.server`, a reply that does not match the API",
            "/// description as `ClientError.protocolViolation`.",
            "extension IProtoClient {",
        ]
        for (index, function) in functions.enumerated() {
            if index > 0 { lines.append("") }
            lines += function.clientMethod.map { "    " + $0 }
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }
}

extension APIFunction {
    fileprivate var clientMethod: [String] {
        let parameters = (request.swiftParameters + ["timeout: Duration? = nil"]).joined(separator: ", ")
        let returns = response.swiftReturnType.map { " -> " + $0 } ?? ""
        return docComment(indent: "") + ["public func \(method)(\(parameters)) async throws(ClientError)\(returns) {"]
            + callLines.map { "    " + $0 } + [
            "    do throws(IProtoError) {",
            "        var values = try Arguments(values: reply.body, count: 1)",
        ] + replyDecoding.map { "        " + $0 } + [
            "    } catch {",
            "        throw .protocolViolation(\"\(name) reply: \\(error.message)\")",
            "    }",
            "}",
        ]
    }

    /// Sends the arguments one after another, each on its line when there are several.
    private var callLines: [String] {
        let encoded = request.map { $0.type.encoding($0.name!) }
        switch encoded.count {
        case 0, 1:
            // A lone array (or any value, which may be one) goes in the array
            // body form: sent bare, a one-element array would be read as that
            // form, its element as the argument.
            let lone = request.first?.type.mayBeArray == true ? ".array([\(encoded[0])])" : encoded.joined()
            return ["let reply = try await call(\(swiftFuncID), arguments: [\(lone)], timeout: timeout)"]
        default:
            return ["let reply = try await call(\(swiftFuncID), arguments: ["]
                + encoded.map { "    \($0)," } + ["], timeout: timeout)"]
        }
    }

    /// Reads the reply's values from `values`: one value, or one array of several.
    private var replyDecoding: [String] {
        switch response.count {
        case 0:
            return ["try values.nil()"]
        case 1:
            return ["return try " + response[0].type.decoding(from: "values", name: response[0].name, reply: true)]
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
