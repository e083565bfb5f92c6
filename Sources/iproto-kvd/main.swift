import ServerSupport

ServerMain.run(IProtoKVD.self, name: "iproto-kvd")
