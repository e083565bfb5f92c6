import ServerSupport

/// The version reported by the iprotod_build_info metric.
let iprotodVersion = "0.2.0"

ServerMain.run(IProtoD.self, name: "iprotod",
               arguments: EnvironmentOptions.arguments(for: IProtoD.self) + CommandLine.arguments.dropFirst())
