import Foundation
import IProtoCodegen
import Testing

/// The generated code and tables, compared with the files committed under
/// Golden/ (the storage's table is docs/storage-api.md). After an intended change, regenerate them (from the package root):
///
///     swift run iproto-codegen Sources/IProtoStorage/storage.iproto-api --inside-client-module \
///         --service Tests/IProtoCodegenTests/Golden/storage-service.swift \
///         --client Tests/IProtoCodegenTests/Golden/storage-client.swift \
///         --markdown docs/storage-api.md
///     swift run iproto-codegen Tests/GeneratedServiceTests/toolbox.iproto-api \
///         --service Tests/IProtoCodegenTests/Golden/toolbox-service.swift \
///         --client Tests/IProtoCodegenTests/Golden/toolbox-client.swift \
///         --markdown Tests/IProtoCodegenTests/Golden/toolbox.md
///
/// and review the difference: it is what every user of the generator gets.
@Suite struct GoldenTests {
    /// The storage's client methods go into IProtoClient itself; the toolbox's into a test target.
    @Test(arguments: [
        ("Sources/IProtoStorage/storage.iproto-api", "storage", "docs/storage-api.md", true),
        ("Tests/GeneratedServiceTests/toolbox.iproto-api", "toolbox", "Tests/IProtoCodegenTests/Golden/toolbox.md", false),
    ])
    func generatedFilesMatchTheGoldenFiles(description: String, name: String, table: String, insideClientModule: Bool) throws {
        let file = URL(fileURLWithPath: description).lastPathComponent
        let api = try APIDescription(parsing: try packageFile(description))
        let golden = "Tests/IProtoCodegenTests/Golden/\(name)"
        #expect(api.serviceSource(file: file) == (try packageFile(golden + "-service.swift")))
        #expect(api.clientSource(file: file, insideClientModule: insideClientModule) == (try packageFile(golden + "-client.swift")))
        #expect(api.markdownTable(file: file) == (try packageFile(table)))
    }
}

/// The text of `path`, relative to the package's root.
func packageFile(_ path: String) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try String(contentsOf: root.appending(path: path), encoding: .utf8)
}
