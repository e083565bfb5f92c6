import IProto
import KVAPI
import IProtoClient
import Synchronization

/// One pooled connection per peer node, made on first use and reconnected
/// with a short backoff (a restarted peer is back within a ping interval).
final class Peers: Sendable {
    private let clients = Mutex<[String: IProtoClient]>([:])
    private let configuration: ClientConfiguration

    init(callTimeout: Duration, maxResponseBody: Int) {
        var configuration = ClientConfiguration()
        configuration.callTimeout = callTimeout
        configuration.connectTimeout = callTimeout
        configuration.maxReconnectBackoff = .milliseconds(500)
        configuration.maxResponseBody = maxResponseBody
        self.configuration = configuration
    }

    /// The client for `address` ("host:port").
    func client(_ address: String) -> IProtoClient {
        clients.withLock { clients in
            if let client = clients[address] { return client }
            let client = IProtoClient(address: address, configuration: configuration)
            clients[address] = client
            return client
        }
    }

    func closeAll() {
        clients.withLock { clients in
            for client in clients.values { client.close() }
            clients = [:]
        }
    }
}
