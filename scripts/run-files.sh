#!/usr/bin/env bash
# A local file store on loopback: the gateway (HTTP on 127.0.0.1:8080) and six
# iproto-volumed nodes (iproto on 127.0.0.1:4101-4106, 4 GiB each), their data
# under $FILES_DIR (default .run-files/, kept across runs). Ctrl-C stops everything.
#
#   scripts/run-files.sh BIN_DIR        (make run-files builds and passes it)
set -euo pipefail
bin=${1:?usage: $0 BIN_DIR}
dir=${FILES_DIR:-.run-files}
http_port=${FILES_HTTP_PORT:-8080}
base_port=${FILES_BASE_PORT:-4101}
nodes=${FILES_NODES:-6}
mkdir -p "$dir"
pids=()
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "stopping the gateway and the nodes"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

started() { # pid, its stdout file, its log
    for _ in $(seq 100); do
        grep -q "listening on" "$2" 2>/dev/null && return
        kill -0 "$1" 2>/dev/null || { cat "$3" >&2; exit 1; }
        sleep 0.1
    done
    echo "did not start; see $3" >&2
    exit 1
}

"$bin/iproto-filegw" --listen "127.0.0.1:$http_port" --data-dir "$dir/gateway" >"$dir/gateway.out" 2>"$dir/gateway.log" &
pids+=($!)
started "${pids[-1]}" "$dir/gateway.out" "$dir/gateway.log"
for index in $(seq "$nodes"); do
    "$bin/iproto-volumed" --listen "127.0.0.1:$((base_port + index - 1))" --data-dir "$dir/node$index" --capacity 4G \
        --gateway "http://127.0.0.1:$http_port" >"$dir/node$index.out" 2>"$dir/node$index.log" &
    pids+=($!)
    started "${pids[-1]}" "$dir/node$index.out" "$dir/node$index.log"
done
echo "file store: gateway http://127.0.0.1:$http_port (status page at /), $nodes nodes on 127.0.0.1:$base_port-$((base_port + nodes - 1)); logs in $dir/"
echo "try: curl -T FILE http://127.0.0.1:$http_port/files/NAME ; curl http://127.0.0.1:$http_port/nodes"
echo "Ctrl-C stops it"
wait
