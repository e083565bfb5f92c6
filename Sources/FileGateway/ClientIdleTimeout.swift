import Metrics
import NIOCore
import NIOHTTPTypes

/// `--idle-timeout`: closes a connection whose client has sent nothing for the
/// timeout **while the gateway was waiting for it**: between requests, or before
/// the end of a request's head and body. Hummingbird's own idle timeout counts
/// from the last byte read whatever the reason, so an upload the gateway itself
/// held back (its next block waiting for `--transfer-memory`, its nodes syncing)
/// looked idle and was cut off, a well-behaved client losing its upload because
/// others were busy. Here the clock runs only while a read is outstanding: from
/// the moment the pipeline asks for bytes (an outbound `read`, which the
/// request's body stream withholds while it is full) until some arrive. A
/// response being written stops nothing: a long download is not idle.
public final class ClientIdleTimeout: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    /// Between a request's head and its end.
    private var readingRequest = false
    /// Requests whose response has not ended.
    private var responding = 0

    private let closes: Counter

    /// `closes` counts the connections closed (``FileStore/idleCloses``).
    public init(timeout: TimeAmount, closes: Counter) {
        self.timeout = timeout
        self.closes = closes
    }

    private var waitingForClient: Bool { readingRequest || responding == 0 }

    public func read(context: ChannelHandlerContext) {
        if timer == nil, waitingForClient {
            let loop = context.eventLoop.assumeIsolated()
            timer = loop.scheduleTask(in: timeout) { [self] in
                timer = nil
                guard waitingForClient else { return }
                closes.increment()
                context.close(promise: nil)
            }
        }
        context.read()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        timer?.cancel()
        timer = nil
        switch unwrapInboundIn(data) {
        case .head:
            readingRequest = true
            responding += 1
        case .end:
            readingRequest = false
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { responding = max(0, responding - 1) }
        context.write(data, promise: promise)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }
}
