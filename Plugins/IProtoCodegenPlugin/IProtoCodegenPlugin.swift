import Foundation
import PackagePlugin

/// Runs iproto-codegen at build time on API descriptions (`*.iproto-api`).
///
/// A target gets the server side of the descriptions among its own sources.
/// A target that can use IProtoClient also gets the client methods of its own
/// descriptions and of those of the targets it depends on directly: that is how
/// IProtoClient itself gets the methods of the package's services.
@main
struct IProtoCodegenPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let module = target as? SourceModuleTarget else { return [] }
        let generator = try context.tool(named: "iproto-codegen").url
        let insideClientModule = target.name == "IProtoClient"
        let usesClient = insideClientModule || target.recursiveTargetDependencies.contains { $0.name == "IProtoClient" }

        func command(for description: URL, service: Bool) -> Command {
            let base = description.deletingPathExtension().lastPathComponent
            var arguments = [description.path(percentEncoded: false)]
            var outputs: [URL] = []
            func output(_ option: String, _ suffix: String) {
                let file = context.pluginWorkDirectoryURL.appending(path: "\(base)-\(suffix).swift")
                arguments += [option, file.path(percentEncoded: false)]
                outputs.append(file)
            }
            if service { output("--service", "service") }
            if usesClient { output("--client", "client") }
            if insideClientModule { arguments.append("--inside-client-module") }
            return .buildCommand(
                displayName: "Generating iproto code from \(description.lastPathComponent)",
                executable: generator,
                arguments: arguments,
                inputFiles: [description],
                outputFiles: outputs
            )
        }

        var commands = descriptions(of: module).map { command(for: $0, service: true) }
        if usesClient {
            for case .target(let dependency) in target.dependencies {
                guard let dependency = dependency as? SourceModuleTarget else { continue }
                commands += descriptions(of: dependency).map { command(for: $0, service: false) }
            }
        }
        return commands
    }

    private func descriptions(of module: SourceModuleTarget) -> [URL] {
        module.sourceFiles(withSuffix: "iproto-api").map(\.url)
    }
}
