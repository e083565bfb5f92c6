import ServerSupport

await ServerMain.runAsync(IProtoFileGW.self, name: "iproto-filegw")
