import FileMetadata
import Foundation

/// The gateway's `/` page: each node's fill as a bar and the files, rendered on
/// the server as plain HTML (no script), so that it reads in any browser and in
/// a headless one under test.
enum StatusPage {
    static func render(nodes: [StorageNodes.Status], files: [FileRecord], layout: String) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>iproto file store</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
            table { border-collapse: collapse; margin-bottom: 2em; }
            th, td { text-align: left; padding: 4px 12px 4px 0; }
            .bar { width: 300px; height: 14px; background: #eee; border-radius: 3px; }
            .fill { height: 14px; background: #3a7bd5; border-radius: 3px; }
            .down { color: #b00; font-weight: bold; }
            </style></head><body>
            <h1>iproto file store</h1>
            <p>\(escape(layout)); \(nodes.count) nodes, \(nodes.filter(\.alive).count) up.</p>
            <h2>Nodes</h2>
            <table id="nodes"><tr><th>node</th><th>address</th><th>fill</th><th></th><th>stored</th><th>capacity</th><th>parts</th><th>state</th></tr>

            """
        for node in nodes {
            let fill = node.capacityBytes > 0 ? Double(node.liveBytes) / Double(node.capacityBytes) : 0
            let width = min(fill, 1) * 100
            html += """
                <tr class="node" data-id="\(escape(node.id))" data-fill="\(fill)"><td>\(escape(String(node.id.prefix(8))))</td><td>\(escape(node.address))</td>\
                <td><div class="bar"><div class="fill" style="width: \(String(format: "%.1f", width))%"></div></div></td>\
                <td>\(String(format: "%.4f%%", fill * 100))</td><td>\(bytes(node.liveBytes))</td><td>\(bytes(node.capacityBytes))</td>\
                <td>\(node.parts)</td><td class="\(node.alive ? "up" : "down")">\(node.alive ? "up" : "down")</td></tr>

                """
        }
        html += "</table>\n<h2>Files</h2>\n<table id=\"files\"><tr><th>name</th><th>size</th><th>ETag</th></tr>\n"
        for file in files {
            html += "<tr class=\"file\"><td>\(escape(file.name))</td><td>\(bytes(file.size))</td><td>\(escape(file.etag))</td></tr>\n"
        }
        html += "</table>\n</body></html>\n"
        return html
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count), unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}
