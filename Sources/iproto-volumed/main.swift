import ServerSupport

ServerMain.run(IProtoVolumed.self, name: "iproto-volumed")
