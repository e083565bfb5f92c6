# Shell helpers shared by the test scripts that start iprotod. Source it after
# setting stop_timeout (seconds); server_pid holds the running server's pid.

# stop_server: SIGTERM, wait up to stop_timeout, then SIGKILL. Returns the server's exit status.
stop_server() {
    local pid=$server_pid status=0 i
    [[ -n $pid ]] || return 0
    server_pid=""
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < stop_timeout * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "  iprotod $pid ignored SIGTERM for ${stop_timeout}s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || status=$?
    return "$status"
}

# start_workspace NAME: makes the temp dir $tmp; on exit or interruption the
# server is stopped and $tmp removed.
start_workspace() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    server_pid=""
    trap 'stop_server || true; rm -rf "$tmp"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
