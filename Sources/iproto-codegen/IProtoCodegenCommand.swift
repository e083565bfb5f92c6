import ArgumentParser
import Foundation
import IProtoCodegen

/// Turns an API description into the service's Swift code and its API table;
/// the IProtoCodegenPlugin build plugin runs it on a target's `*.iproto-api`.
@main
struct IProtoCodegenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iproto-codegen",
        abstract: "Generate iproto handlers, client methods and the API table from an API description (*.iproto-api)."
    )

    @Argument(help: "The API description file.")
    var input: String

    @Option(help: "Write the server side here: the service protocol, the func_id enum, the Handlers registration.")
    var service: String?

    @Option(help: "Write the typed IProtoClient methods here.")
    var client: String?

    @Option(help: "Write the API table in Markdown here.")
    var markdown: String?

    @Flag(help: "The client code is compiled into IProtoClient itself, so it does not import it.")
    var insideClientModule = false

    func validate() throws {
        guard service != nil || client != nil || markdown != nil else {
            throw ValidationError("nothing to write: give --service, --client or --markdown")
        }
    }

    func run() throws {
        let api: APIDescription
        do {
            api = try APIDescription(parsing: String(contentsOfFile: input, encoding: .utf8))
        } catch let error as DescriptionError {
            // The compiler's format, so build logs and editors point at the line.
            FileHandle.standardError.write(Data("\(input):\(error.line): error: \(error.message)\n".utf8))
            throw ExitCode.failure
        }
        let file = URL(fileURLWithPath: input).lastPathComponent
        try write(api.serviceSource(file: file), to: service)
        try write(api.clientSource(file: file, insideClientModule: insideClientModule), to: client)
        try write(api.markdownTable(file: file), to: markdown)
    }

    private func write(_ text: @autoclosure () -> String, to path: String?) throws {
        guard let path else { return }
        try text().write(toFile: path, atomically: true, encoding: .utf8)
    }
}
