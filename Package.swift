// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "iproto",
    products: [
        .library(name: "IProto", targets: ["IProto"]),
        .library(name: "IProtoStorage", targets: ["IProtoStorage"]),
        .executable(name: "iprotod", targets: ["iprotod"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
    ],
    targets: [
        // System libraries from Debian (no pkg-config files ship for either).
        .systemLibrary(name: "CLibev", path: "CLibev", providers: [.apt(["libev-dev"])]),
        .systemLibrary(name: "CMsgPuck", providers: [.apt(["libmsgpuck-dev"])]),

        // The C core: event loops, sockets, buffers, framing, limits.
        .target(
            name: "CIProtoCore",
            dependencies: ["CLibev", "CMsgPuck"],
            cSettings: [.unsafeFlags(["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"])],
            linkerSettings: [.linkedLibrary("ev"), .linkedLibrary("msgpuck"), .linkedLibrary("pthread")]
        ),

        // The safe Swift API over the core.
        .target(
            name: "IProto",
            dependencies: ["CIProtoCore", "CMsgPuck"]
        ),

        // The assignment's storage service.
        .target(
            name: "IProtoStorage",
            dependencies: ["IProto"]
        ),

        // The server binary: flags, wiring, signals.
        .executableTarget(
            name: "iprotod",
            dependencies: [
                "IProto",
                "IProtoStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Test-only helpers: a blocking TCP client and a launcher for the real binary.
        .target(
            name: "IProtoTestSupport",
            dependencies: ["IProto"],
            path: "Tests/IProtoTestSupport"
        ),
        .testTarget(name: "IProtoTests", dependencies: ["IProto", "IProtoTestSupport"]),
        .testTarget(name: "IProtoStorageTests", dependencies: ["IProtoStorage", "IProto"]),
        .testTarget(name: "EndToEndTests", dependencies: ["IProto", "IProtoTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
