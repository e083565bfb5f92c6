import AsyncHTTPClient
import Foundation
import NIOCore

/// A node's registration at the gateway: `POST /nodes` with its address and id.
/// The gateway then probes the node over iproto (VOL_NODE_INFO) for its capacity,
/// fill and liveness, so registering again is only how a restarted gateway, or
/// one that dropped the node, learns of it.
struct Registration: Sendable {
    let gatewayURL: String
    let address: String
    let node: String

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    // One connection pool for the process, never shut down (it lives as long as the node).
    private static let http = HTTPClient(eventLoopGroupProvider: .singleton)

    func register() async throws {
        var request = HTTPClientRequest(url: gatewayURL.trimmingSuffix("/") + "/nodes")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        let body = try JSONSerialization.data(withJSONObject: ["address": address, "node": node])
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await Self.http.execute(request, timeout: .seconds(5))
        let text = String(buffer: try await response.body.collect(upTo: 64 << 10))
        guard (200..<300).contains(response.status.code) else {
            throw Failure(description: "the gateway answered \(response.status.code): \(text.prefix(200))")
        }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
