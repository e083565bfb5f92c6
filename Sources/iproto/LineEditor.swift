import CLineEditor

#if canImport(Glibc)
import Glibc
#endif

/// libedit line editing: the REPL's only contact with C strings.
final class LineEditor {
    /// C copies of the completion words; libedit reads them for the editor's whole life.
    private let words: [UnsafeMutablePointer<CChar>?]
    private let program = strdup("iproto")
    private let historyPath: UnsafeMutablePointer<CChar>?

    init(history: String?, commands: [String], argumentCommand: String, arguments: [String]) {
        words = (commands + [argumentCommand] + arguments).map { strdup($0) }
        historyPath = history.map { strdup($0) }
        words.withUnsafeBufferPointer { all in
            let base = UnsafeRawPointer(all.baseAddress!).assumingMemoryBound(to: UnsafePointer<CChar>?.self)
            line_editor_open(program, historyPath, base, commands.count,
                             base[commands.count], base + commands.count + 1, arguments.count)
        }
    }

    deinit {
        line_editor_close()
        for word in words { free(word) }
        free(program)
        free(historyPath)
    }

    /// The next line, or nil at end of input (Ctrl-D).
    func read(prompt: String) -> String? {
        guard let line = line_editor_read(prompt) else { return nil }
        defer { free(line) }
        return String(cString: line)
    }

    /// The next line, or nil at end of input; while waiting for it, calls `onWake` whenever
    /// `wakeFD` (non-blocking) becomes readable (see line_editor_read_watching). `onWake`
    /// returns true when it printed something, so that the line being edited is redrawn.
    func read(prompt: String, wakeFD: Int32, onWake: () -> Bool) -> String? {
        withoutActuallyEscaping(onWake) { onWake in
            let handler = WakeHandler(onWake)
            let context = Unmanaged.passUnretained(handler).toOpaque()
            let line = withExtendedLifetime(handler) { line_editor_read_watching(prompt, wakeFD, wakeTrampoline, context) }
            guard let line else { return nil }
            defer { free(line) }
            return String(cString: line)
        }
    }
}

/// What `read(prompt:wakeFD:onWake:)` hands libedit as the callback's context.
private final class WakeHandler {
    let body: () -> Bool
    init(_ body: @escaping () -> Bool) { self.body = body }
}

private let wakeTrampoline: @convention(c) (UnsafeMutableRawPointer?) -> Int32 = { context in
    guard let context else { return 0 }
    return Unmanaged<WakeHandler>.fromOpaque(context).takeUnretainedValue().body() ? 1 : 0
}
