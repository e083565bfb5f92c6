import IProto
import KVAPI
import IProtoClient
import Synchronization

/// One pooled connection per peer node, made on first use and reconnected
/// with a short backoff (a restarted peer is back within a ping interval),
/// for the node's tasks; and the same settings for the leader's workers, which
/// call replicas from their own threads (``blockingCalls()``).
final class Peers: Sendable {
    private let clients = Mutex<[String: IProtoClient]>([:])
    private let configuration: ClientConfiguration

    private let maxUnansweredBytes: Int

    /// `maxUnansweredBytes`: a worker sends a replica no more calls while this many
    /// bytes of earlier ones (abandoned once a quorum answered) wait for replies.
    init(callTimeout: Duration, maxResponseBody: Int, maxUnansweredBytes: Int) {
        self.maxUnansweredBytes = maxUnansweredBytes
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

    /// Connections to the peers for one thread, with the pool's timeouts and limits.
    func blockingCalls() -> BlockingCalls {
        BlockingCalls(configuration: configuration, maxUnansweredBytes: maxUnansweredBytes)
    }

    func closeAll() {
        clients.withLock { clients in
            for client in clients.values { client.close() }
            clients = [:]
        }
    }
}
