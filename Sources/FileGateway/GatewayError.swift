/// A request the gateway cannot serve, with the HTTP status to answer and a message for the body.
public struct GatewayError: Error, CustomStringConvertible, Sendable {
    public enum Status: Int, Sendable {
        case badRequest = 400, notFound = 404, payloadTooLarge = 413, rangeNotSatisfiable = 416
        case internalError = 500, badGateway = 502, serviceUnavailable = 503, insufficientStorage = 507
    }

    public let status: Status
    public let description: String

    public init(_ status: Status, _ description: String) {
        self.status = status
        self.description = description
    }
}
