import IProto
import Synchronization

/// An iproto client: async calls over a pool of pipelined connections.
///
/// ```swift
/// let client = IProtoClient(host: "127.0.0.1", port: 3301)
/// let reply = try await client.call(0x0002_0002, arguments: [5])
/// ```
/// Safe to share between tasks; calls are spread over the pool's connections.
public final class IProtoClient: Sendable {
    public let configuration: ClientConfiguration
    private let connections: [ClientConnection]
    private let nextConnection = Atomic(0)

    public init(host: String, port: Int, configuration: ClientConfiguration = ClientConfiguration()) {
        self.configuration = configuration
        connections = (0..<max(1, configuration.connections)).map { _ in
            ClientConnection(host: host, port: port, configuration: configuration)
        }
    }

    /// A client of `address`, "host:port" or "[v6]:port" (as nodes name each other);
    /// an address without a port gets port 0, which no connection reaches.
    public convenience init(address: String, configuration: ClientConfiguration = ClientConfiguration()) {
        let (host, port) = Self.split(address)
        self.init(host: host, port: port, configuration: configuration)
    }

    /// "host:port" or "[v6]:port" as (host, port).
    public static func split(_ address: String) -> (host: String, port: Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            return (address, 0)
        }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    deinit { close() }

    /// Calls `funcID` with a raw MessagePack body and returns the reply, whatever its return code.
    public func call(_ funcID: UInt32, body: [UInt8], timeout: Duration? = nil) async throws(ClientError) -> Response {
        try await call(funcID, pieces: [body], timeout: timeout)
    }

    /// The same with the body in pieces, sent one after another (``PreparedCall/pieces``).
    func call(_ funcID: UInt32, pieces: [[UInt8]], timeout: Duration?) async throws(ClientError) -> Response {
        let index = nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue % connections.count
        return try await connections[index].call(funcID, pieces: pieces, timeout: timeout ?? configuration.callTimeout)
    }

    /// Calls `funcID` with `arguments` encoded one after another; a non-zero
    /// return code is thrown as ``ClientError/server(_:)``.
    public func call(_ funcID: UInt32, arguments: [MessagePackValue], timeout: Duration? = nil) async throws(ClientError) -> Response {
        var writer = MessagePackWriter()
        for argument in arguments { writer.write(argument) }
        return try await call(funcID, body: writer.bytes, timeout: timeout).checked()
    }

    /// Fails the calls in flight and closes the connections.
    public func close() {
        for connection in connections { connection.close() }
    }
}
