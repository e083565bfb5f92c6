import CISAL

#if canImport(Glibc)
import Glibc
#endif

// The storage layers' only contact with the file system calls and to ISA-L's CRC-32, and
// their only pointer code (the storage journal's and the volume store's): each
// call retries EINTR and turns a failure into a FileSystemError naming the call
// and the path.

/// Why a data directory could not be read or written, or what its files hold that is wrong.
public struct FileSystemError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// The system's reason in its own words ("No space left on device"), when a call failed.
    public let systemReason: String?

    public init(_ description: String, systemReason: String? = nil) {
        self.description = description
        self.systemReason = systemReason
    }

    static func system(_ call: String, _ path: String) -> FileSystemError {
        let reason = String(cString: strerror(errno))
        return FileSystemError("\(call) \(path): \(reason)", systemReason: reason)
    }
}

/// A file written by appending and made durable by syncing: a journal segment,
/// a snapshot being made, a volume or its index.
public final class DurableFile {
    public private(set) var path: String
    private let fd: Int32
    /// The file's length: bytes written through this object after the ones it was opened with.
    public private(set) var written: Int
    /// True when a failed append left bytes after `written` that could not be cut
    /// off: what follows `written` on disk is unknown until a ``truncate(to:)`` succeeds.
    public private(set) var tailUnknown = false

    private init(path: String, fd: Int32, length: Int) {
        self.path = path
        self.fd = fd
        written = length
    }

    deinit { close(fd) }

    /// Creates `path` empty (replacing a file of that name) for writing.
    public static func create(_ path: String) throws(FileSystemError) -> DurableFile {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .system("open", path) }
        return DurableFile(path: path, fd: fd, length: 0)
    }

    /// Opens the existing `path` to append after its first `length` bytes (what recovery kept).
    public static func openForAppending(_ path: String, length: Int) throws(FileSystemError) -> DurableFile {
        let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system("open", path) }
        return DurableFile(path: path, fd: fd, length: length)
    }

    /// Appends `bytes` after the last complete write. When the disk refuses
    /// them, the file is cut back to its length before the call (best effort:
    /// a cut that fails too leaves a tail that the next write overwrites and
    /// recovery would truncate) and the error is thrown; nothing is half-appended.
    public func write(_ bytes: [UInt8]) throws(FileSystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                pwrite(fd, raw.baseAddress! + offset, raw.count - offset, off_t(written + offset))
            }
            if n > 0 {
                offset += n
            } else if n < 0 && errno != EINTR {
                let error = FileSystemError.system("write", path)
                if offset > 0 && ftruncate(fd, off_t(written)) != 0 { tailUnknown = true }
                throw error
            }
        }
        written += bytes.count
    }

    /// Renames the file; the directory must be synced for the new name to last.
    public func rename(to newPath: String) throws(FileSystemError) {
        try Self.rename(path, to: newPath)
        path = newPath
    }

    /// Cuts the file back to `length` bytes (a failed append's). Not synced
    /// here: the next successful ``sync()`` makes the new length durable with
    /// the data written after it.
    public func truncate(to length: Int) throws(FileSystemError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw .system("ftruncate", path) }
        written = length
        tailUnknown = false
    }

    /// fdatasync: the bytes written so far survive a crash of the machine.
    public func sync() throws(FileSystemError) {
        while fdatasync(fd) != 0 {
            guard errno == EINTR else { throw .system("fdatasync", path) }
        }
    }

    /// The whole file, or nil if there is none.
    public static func read(_ path: String) throws(FileSystemError) -> [UInt8]? {
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
    public static func truncate(_ path: String, to length: Int) throws(FileSystemError) {
        let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system("open", path) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0 else { throw .system("ftruncate", path) }
        guard fsync(fd) == 0 else { throw .system("fsync", path) }
    }

    public static func rename(_ from: String, to: String) throws(FileSystemError) {
        guard Glibc.rename(from, to) == 0 else { throw .system("rename", from) }
    }

    /// Removes `path`; a file that is already gone is not an error.
    public static func remove(_ path: String) throws(FileSystemError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw .system("unlink", path) }
    }

    /// Makes renames, creations and removals in `directory` durable.
    public static func syncDirectory(_ directory: String) throws(FileSystemError) {
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .system("open", directory) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .system("fsync", directory) }
    }

    /// Creates `directory` if it does not exist (its parent must).
    public static func makeDirectory(_ directory: String) throws(FileSystemError) {
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else { throw .system("mkdir", directory) }
    }

    /// Bytes an unprivileged process may still write on the file system holding `path`.
    public static func availableBytes(at path: String) throws(FileSystemError) -> Int {
        var status = statvfs()
        guard statvfs(path, &status) == 0 else { throw .system("statvfs", path) }
        return Int(status.f_bavail) * Int(status.f_frsize)
    }

    /// The names in `directory`.
    public static func list(_ directory: String) throws(FileSystemError) -> [String] {
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

/// A file read at any offset, from any thread (pread): a volume's records.
public final class ReadableFile: Sendable {
    public let path: String
    private let fd: Int32

    /// Opens `path` for reading.
    public init(_ path: String) throws(FileSystemError) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system("open", path) }
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// The file's length now.
    public func length() throws(FileSystemError) -> Int {
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .system("fstat", path) }
        return Int(status.st_size)
    }

    /// `count` bytes from `offset`, fewer only where the file ends.
    public func read(at offset: Int, count: Int) throws(FileSystemError) -> [UInt8] {
        // Read into uninitialized storage: a chunk is read on every GET, and zeroing it first was a pass over it for nothing.
        var failed = false
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset + done))
                if n > 0 {
                    done += n
                } else if n == 0 {
                    break
                } else if errno != EINTR {
                    failed = true
                    break
                }
            }
            initialized = done
        }
        if failed { throw .system("read", path) }
        return bytes
    }
}

/// The CRC-32 that the storage formats put beside their records: zlib's (the gzip/IEEE
/// polynomial, reflected), computed by ISA-L's crc32_gzip_refl (55 GB/s here against
/// zlib's 4 GB/s; the same values, so no format changed when it replaced zlib).
public enum Checksum {
    /// The CRC-32 of `bytes[range]`; with `continuing`, of the bytes it was computed over followed by these.
    public static func crc32(_ bytes: [UInt8], _ range: Range<Int>, continuing previous: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBufferPointer { buffer in
            crc32_gzip_refl(previous, buffer.baseAddress.map { $0 + range.lowerBound }, UInt64(range.count))
        }
    }

    /// The CRC-32 of all of `bytes`.
    public static func crc32(_ bytes: [UInt8]) -> UInt32 { crc32(bytes, 0..<bytes.count) }

    /// The CRC-32 of all of `bytes`, a slice computed where it lies.
    public static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBufferPointer { crc32_gzip_refl(0, $0.baseAddress, UInt64($0.count)) }
    }
}
