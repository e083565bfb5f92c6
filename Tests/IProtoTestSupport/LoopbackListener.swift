#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket on a free port of 127.0.0.1, for tests that play a peer
/// (one that never answers, one that answers by script). Closed on deinit.
public final class LoopbackListener: Sendable {
    public let fd: Int32
    public let port: Int

    public init(backlog: Int32 = 16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, backlog) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        guard bound else {
            close(fd)
            throw TestSocketError.system("bind/listen on 127.0.0.1")
        }
    }

    deinit { close(fd) }
}
