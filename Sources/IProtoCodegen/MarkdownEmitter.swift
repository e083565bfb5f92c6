extension APIDescription {
    /// The API table in Markdown, in the assignment's columns. `file` names
    /// the description in the notice on top.
    public func markdownTable(file: String) -> String {
        var lines = [
            "<!-- " + generatedNotice(file) + " -->",
            "",
            "| func_id | name | request | response | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for function in functions {
            let cells = [
                "`\(hex(function.funcID))`", "`\(function.name)`",
                "`\(function.request.schema)`", "`\(function.response.schema)`",
                function.summary.replacing("|", with: "\\|"),
            ]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
