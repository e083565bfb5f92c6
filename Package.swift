// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "iproto",
    products: [
        .library(name: "IProto", targets: ["IProto"]),
        .library(name: "IProtoStorage", targets: ["IProtoStorage"]),
        .library(name: "IProtoPrometheus", targets: ["IProtoPrometheus"]),
        .library(name: "IProtoClient", targets: ["IProtoClient"]),
        .executable(name: "iprotod", targets: ["iprotod"]),
        .executable(name: "iproto", targets: ["iproto"]),
        .executable(name: "iproto-kvd", targets: ["iproto-kvd"]),
        .executable(name: "iproto-volumed", targets: ["iproto-volumed"]),
        .executable(name: "iproto-filegw", targets: ["iproto-filegw"]),
        .library(name: "KVService", targets: ["KVService"]),
        .library(name: "KVClient", targets: ["KVClient"]),
        .plugin(name: "IProtoCodegenPlugin", targets: ["IProtoCodegenPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", exact: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client", exact: "1.37.0"),
        // SQLite for the KV replicas' durable store (KVStore), over Debian's libsqlite3.
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        // The file store's HTTP gateway.
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", exact: "1.8.0"),
        // The file gateway's shared metadata option.
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", exact: "1.35.2"),
    ],
    targets: [
        // System libraries from Debian (no pkg-config files ship for either).
        .systemLibrary(name: "CLibev", path: "CLibev", providers: [.apt(["libev-dev"])]),
        .systemLibrary(name: "CMsgPuck", providers: [.apt(["libmsgpuck-dev"])]),
        // epoll, which Glibc's Swift module does not export.
        .systemLibrary(name: "CEpoll"),
        // Intel ISA-L: the CRC-32 of every journal record, volume record and file chunk
        // (zlib's values, computed with carry-less multiplication), and the file store's
        // Reed–Solomon parity. Debian ships no pkg-config file for it.
        .systemLibrary(name: "CISAL", providers: [.apt(["libisal-dev"])]),

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
            dependencies: [
                "CIProtoCore",
                "CMsgPuck",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // Files made durable by appending and syncing, read back at any offset, with their
        // checksums: the one place the storage layers touch the file system.
        .target(name: "Durability", dependencies: ["CISAL"]),

        // A storage node's parts in append-only, checksummed volumes with an index (docs/volume-format.md).
        .target(name: "VolumeStore", dependencies: ["Durability"]),

        // The assignment's storage service.
        .target(
            name: "IProtoStorage",
            dependencies: [
                "Durability", "IProto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            plugins: ["IProtoCodegenPlugin"]
        ),

        // The client: async calls over pipelined, pooled connections.
        .target(
            name: "IProtoClient",
            dependencies: ["CEpoll", "IProto", "IProtoStorage"],
            plugins: ["IProtoCodegenPlugin"]
        ),

        // Prometheus exposition of the swift-metrics the server records, over a small HTTP/1.1 endpoint of its own.
        .target(
            name: "IProtoPrometheus",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // etcd's v3 API over its JSON gateway (docs/cluster.md, "Why the JSON gateway"):
        // KV, transactions, leases, elections. Mechanism only, no policy.
        .target(
            name: "EtcdClient",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Sessions (a lease kept alive), elections fenced by their revision, membership
        // and cluster configuration in etcd: what every clustered service of the package shares.
        .target(
            name: "ClusterCoordination",
            dependencies: ["EtcdClient", .product(name: "Logging", package: "swift-log")]
        ),

        // What every server binary of the package shares: start-up, failure exits, signals, flag values.
        .target(
            name: "ServerSupport",
            dependencies: [
                "IProto", "IProtoPrometheus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        // The server binary: flags, wiring, signals.
        .executableTarget(
            name: "iprotod",
            dependencies: [
                "IProto",
                "ServerSupport",
                "IProtoStorage",
                "IProtoPrometheus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        // Line editing for the REPL, over Debian's libedit.
        .target(
            name: "CLineEditor",
            linkerSettings: [.linkedLibrary("edit")]
        ),

        // The command-line client: calls, state switches, raw requests, REPL, bench.
        .executableTarget(
            name: "iproto",
            dependencies: [
                "CLineEditor",
                "IProto",
                "IProtoClient",
                "IProtoStorage",
                "KVAPI",
                "KVClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                // iproto files: the file gateway's HTTP API.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),

        // API descriptions (*.iproto-api) → service protocols, Handlers registration, client methods, API tables.
        .target(name: "IProtoCodegen"),
        .executableTarget(
            name: "iproto-codegen",
            dependencies: ["IProtoCodegen", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Runs iproto-codegen on a target's API descriptions at build time.
        .plugin(name: "IProtoCodegenPlugin", capability: .buildTool(), dependencies: ["iproto-codegen"]),

        // Test-only helpers: a blocking TCP client and a launcher for the real binary.
        .target(
            name: "IProtoTestSupport",
            dependencies: ["IProto"],
            path: "Tests/IProtoTestSupport"
        ),
        .testTarget(name: "IProtoTests", dependencies: ["IProto", "IProtoTestSupport"]),
        .testTarget(name: "IProtoStorageTests", dependencies: ["IProtoStorage", "IProto", "Durability"], exclude: ["Fixtures"]),
        .testTarget(name: "VolumeStoreTests", dependencies: ["VolumeStore", "Durability"]),
        .testTarget(name: "IProtoPrometheusTests", dependencies: ["IProtoPrometheus", "IProtoTestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["IProto", "IProtoClient", "IProtoStorage", "IProtoTestSupport"]),
        .testTarget(name: "EtcdClientTests", dependencies: ["EtcdClient", "ClusterCoordination"]),
        .testTarget(name: "IProtoCodegenTests", dependencies: ["IProtoCodegen"], exclude: ["Golden"]),
        // A test-only service generated from its own description, served and called end to end.
        .testTarget(
            name: "GeneratedServiceTests",
            dependencies: ["IProto", "IProtoClient", "IProtoTestSupport"],
            plugins: ["IProtoCodegenPlugin"]
        ),

        // SQLite files whose every commit is synced (WAL, synchronous=FULL), through GRDB.
        .target(name: "SQLiteSupport", dependencies: [.product(name: "GRDB", package: "GRDB.swift")]),
        // Hashes every process computes alike, for placement (FNV-1a, splitmix64, rendezvous scores).
        .target(name: "StableHashing"),

        // ---- KV cluster (issue 11) -----------------------------------------------------------
        // Pure replication logic: keys, versions, epochs, rendezvous placement, quorums.
        // Depends on nothing; no I/O, no clocks.
        .target(name: "KVReplication", dependencies: ["StableHashing"]),
        // A replica's durable store: one SQLite file per node (WAL, synchronous=FULL).
        .target(
            name: "KVStore",
            dependencies: ["KVReplication", "SQLiteSupport", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(name: "KVReplicationTests", dependencies: ["KVReplication"]),
        .testTarget(name: "KVClientTests", dependencies: ["KVClient", "KVAPI", "IProto"]),
        // GRDB too: the disk-full test caps the file size through the store's connection.
        .testTarget(
            name: "KVStoreTests",
            dependencies: ["KVStore", "KVReplication", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The cluster's wire API: the client functions (kv.iproto-api), the node-to-node
        // ones (kv-peer.iproto-api) and the return codes; server protocols and client calls.
        .target(
            name: "KVAPI",
            dependencies: ["IProto", "IProtoClient"],
            plugins: ["IProtoCodegenPlugin"]
        ),
        // The Swift client: follows the leader, heartbeats, switches nodes when one stops answering.
        .target(
            name: "KVClient",
            dependencies: ["KVAPI", "IProto", "IProtoClient", "KVReplication"]
        ),
        // A key-value node: serves both APIs, runs the loops that keep its view current.
        .target(
            name: "KVService",
            dependencies: [
                "KVAPI", "IProto", "IProtoClient", "KVReplication", "KVStore", "ClusterCoordination", "EtcdClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The node binary: flags, wiring, signals.
        .executableTarget(
            name: "iproto-kvd",
            dependencies: [
                "KVService", "IProto", "IProtoPrometheus", "ServerSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // ---- end of KV cluster ---------------------------------------------------------------

        // ---- File store (issue 12) -----------------------------------------------------------
        // How files are cut into data and parity parts, and the coding itself. Pure but for ISA-L.
        .target(name: "ErasureCoding", dependencies: ["CISAL"]),
        .testTarget(name: "ErasureCodingTests", dependencies: ["ErasureCoding"]),
        // Where a new file's parts go (lowest fill, reservations) and rebalancing moves. Pure.
        .target(name: "FilePlacement", dependencies: ["StableHashing"]),
        .testTarget(name: "FilePlacementTests", dependencies: ["FilePlacement", "ErasureCoding"]),
        // The gateway's metadata (files, parts, nodes, parts to reclaim) behind one interface; SQLite by default, PostgreSQL to share.
        .target(
            name: "FileMetadata",
            dependencies: [
                "SQLiteSupport", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "FileMetadataTests", dependencies: ["FileMetadata", .product(name: "GRDB", package: "GRDB.swift")]),
        // The gateway: uploads, downloads, placement, reclaiming; its HTTP routes and status page.
        .target(
            name: "FileGateway",
            dependencies: [
                "FileMetadata", "FilePlacement", "ErasureCoding", "VolumeAPI", "Durability", "IProto", "IProtoClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .testTarget(name: "FileGatewayTests", dependencies: ["FileGateway"]),
        // A node's wire API (volume.iproto-api) and return codes: the service protocol and client calls.
        .target(name: "VolumeAPI", dependencies: ["IProto", "IProtoClient"], plugins: ["IProtoCodegenPlugin"]),
        // A storage node: the Volume API over a VolumeStore, with group commit and registration at the gateway.
        .target(
            name: "VolumeService",
            dependencies: [
                "VolumeAPI", "VolumeStore", "Durability", "ErasureCoding", "IProto",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // glibc's <malloc.h> (mallopt).
        .systemLibrary(name: "CMalloc"),
        // The gateway binary: flags, wiring, the HTTP server.
        .executableTarget(
            name: "iproto-filegw",
            dependencies: [
                "CMalloc", "FileGateway", "FileMetadata", "IProto", "IProtoPrometheus", "ServerSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The storage node binary: flags, wiring, signals.
        .executableTarget(
            name: "iproto-volumed",
            dependencies: [
                "VolumeService", "IProto", "IProtoPrometheus", "ServerSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // ---- end of file store ---------------------------------------------------------------
    ],
    swiftLanguageModes: [.v6]
)

// The libFuzzer target for request-argument decoding (fuzz/README.md). It exists
// only when fuzz/run.sh sets IPROTO_FUZZ to libFuzzer's no-main runtime, so that
// ordinary builds never compile it (it needs IProto built for testing).
if let libFuzzer = Context.environment["IPROTO_FUZZ"] {
    package.targets.append(
        .executableTarget(
            name: "iproto-fuzz-arguments",
            dependencies: ["IProto", "IProtoStorage", .product(name: "Logging", package: "swift-log")],
            path: "fuzz/arguments",
            exclude: ["LLVMFuzzer.h"],
            swiftSettings: [.unsafeFlags(["-import-objc-header", Context.packageDirectory + "/fuzz/arguments/LLVMFuzzer.h"])],
            linkerSettings: [.unsafeFlags(["-Xlinker", libFuzzer]), .linkedLibrary("stdc++")]
        )
    )
}
