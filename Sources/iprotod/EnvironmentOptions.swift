import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// Options read from the environment: IPROTOD_<OPTION> for each --option
/// (IPROTOD_MAX_BODY for --max-body, IPROTOD_REUSE_PORT=1 for --reuse-port),
/// and LOG_LEVEL for --log-level.
enum EnvironmentOptions {
    /// Command-line arguments equivalent to the environment, for every option
    /// and flag `Command` declares. They go before the real arguments, so that
    /// an option given on the command line wins.
    static func arguments<Command: ParsableCommand>(for command: Command.Type) -> [String] {
        var arguments: [String] = []
        for child in Mirror(reflecting: Command()).children {
            guard let label = child.label?.dropFirst() else { continue }  // "_maxBody" -> "maxBody"
            let option = kebabCase(String(label))
            guard let value = value(of: option) else { continue }
            if child.value is Flag<Bool> {
                if ["1", "true", "yes", "on"].contains(value.lowercased()) { arguments.append("--\(option)") }
            } else {
                arguments += ["--\(option)", value]
            }
        }
        return arguments
    }

    private static func value(of option: String) -> String? {
        let name = "IPROTOD_" + String(option.uppercased().map { $0 == "-" ? "_" : $0 })
        if let value = getenv(name) { return String(cString: value) }
        if option == "log-level", let value = getenv("LOG_LEVEL") { return String(cString: value).lowercased() }
        return nil
    }

    /// "maxBody" -> "max-body", as ArgumentParser names options.
    private static func kebabCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase {
                result += "-" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}
