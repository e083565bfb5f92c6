/// The version reported by the iprotod_build_info metric.
let iprotodVersion = "0.2.0"

IProtoD.main(EnvironmentOptions.arguments(for: IProtoD.self) + CommandLine.arguments.dropFirst())
