import CZlib

#if canImport(Glibc)
import Glibc
#endif

// The journal's only contact with the file system calls and zlib, and its only
// pointer code: each call retries EINTR and turns a failure into a JournalError
// naming the call and the path.

/// Why the data directory could not be read or written.
public struct JournalError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(_ description: String) { self.description = description }

    static func system(_ call: String, _ path: String) -> JournalError {
        JournalError("\(call) \(path): \(String(cString: strerror(errno)))")
    }
}

/// A file the journal writes: a log segment or a snapshot being made.
final class DurableFile {
    let path: String
    private let fd: Int32
    /// Bytes written through this object.
    private(set) var written = 0

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// Creates `path` empty (replacing a file of that name) for writing.
    static func create(_ path: String) throws(JournalError) -> DurableFile {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .system("open", path) }
        return DurableFile(path: path, fd: fd)
    }

    func write(_ bytes: [UInt8]) throws(JournalError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
            if n > 0 {
                offset += n
            } else if n < 0 && errno != EINTR {
                throw .system("write", path)
            }
        }
        written += bytes.count
    }

    /// fdatasync: the bytes written so far survive a crash of the machine.
    func sync() throws(JournalError) {
        while fdatasync(fd) != 0 {
            guard errno == EINTR else { throw .system("fdatasync", path) }
        }
    }

    /// The whole file, or nil if there is none.
    static func read(_ path: String) throws(JournalError) -> [UInt8]? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw .system("open", path)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                bytes += chunk[0..<n]
            } else if n == 0 {
                return bytes
            } else if errno != EINTR {
                throw .system("read", path)
            }
        }
    }

    /// Cuts `path` to `length` bytes and syncs it.
    static func truncate(_ path: String, to length: Int) throws(JournalError) {
        let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system("open", path) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0 else { throw .system("ftruncate", path) }
        guard fsync(fd) == 0 else { throw .system("fsync", path) }
    }

    static func rename(_ from: String, to: String) throws(JournalError) {
        guard Glibc.rename(from, to) == 0 else { throw .system("rename", from) }
    }

    /// Removes `path`; a file that is already gone is not an error.
    static func remove(_ path: String) throws(JournalError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw .system("unlink", path) }
    }

    /// Makes renames, creations and removals in `directory` durable.
    static func syncDirectory(_ directory: String) throws(JournalError) {
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .system("open", directory) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .system("fsync", directory) }
    }

    /// Creates `directory` if it does not exist (its parent must).
    static func makeDirectory(_ directory: String) throws(JournalError) {
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else { throw .system("mkdir", directory) }
    }

    /// The names in `directory`.
    static func list(_ directory: String) throws(JournalError) -> [String] {
        guard let stream = opendir(directory) else { throw .system("opendir", directory) }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// The CRC-32 (zlib's) of `bytes[range]`.
func checksum(_ bytes: [UInt8], _ range: Range<Int>) -> UInt32 {
    bytes.withUnsafeBufferPointer { buffer in
        UInt32(crc32(0, buffer.baseAddress! + range.lowerBound, UInt32(range.count)))
    }
}
