#!/usr/bin/env bash
# Runs every wire fixture against the real server.
#
#   Tests/Fixtures/run.sh PATH_TO_IPROTOD
#
# For each NAME.bin (sorted): start a fresh `iprotod --listen 127.0.0.1:0 --metrics-listen ""
# --workers 1` plus the flags in NAME.args if there is one (e.g. the fuzz
# regression that needs --max-output 1), read the port from its first stdout line, send NAME.bin with
# `nc -N` (half-close after sending, so the server answers everything and
# closes), compare the reply with NAME.expected byte for byte, stop the server.
# Prints "ok NAME" / "FAIL NAME" per fixture, then "N passed, M failed";
# exits non-zero if any failed.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 PATH_TO_IPROTOD" >&2
    exit 2
fi
iprotod=$1
if [[ ! -x $iprotod ]]; then
    echo "$0: $iprotod is not an executable" >&2
    exit 2
fi
if ! nc -h 2>&1 | head -1 | grep -q OpenBSD; then
    echo "$0: needs netcat-openbsd as nc (for -N)" >&2
    exit 2
fi

fixtures_dir=$(cd "$(dirname "$0")" && pwd)
startup_timeout=20  # seconds to wait for the "listening" line
reply_timeout=10    # seconds for one fixture's exchange
stop_timeout=15     # seconds for the server to exit after SIGTERM

# shellcheck source=../lib/server.sh
source "$fixtures_dir/../lib/server.sh"
start_workspace iproto-fixtures

# start_server [FLAG...]: starts iprotod with the extra flags, sets server_pid and
# port. Fails if no address line appears within startup_timeout or the server exits first.
start_server() {
    local line="" i
    : >"$tmp/stdout"
    : >"$tmp/stderr"
    "$iprotod" --listen 127.0.0.1:0 --metrics-listen "" --workers 1 "$@" >"$tmp/stdout" 2>"$tmp/stderr" &
    server_pid=$!
    for ((i = 0; i < startup_timeout * 20; i++)); do
        if [[ $(wc -l <"$tmp/stdout") -ge 1 ]]; then  # a complete first line
            IFS= read -r line <"$tmp/stdout"
            break
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "  iprotod exited before listening:" >&2
            sed 's/^/    /' "$tmp/stderr" >&2
            server_pid=""
            return 1
        fi
        sleep 0.05
    done
    if [[ $line =~ ^iprotod\ listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
        port=${BASH_REMATCH[1]}
        return 0
    fi
    echo "  no address line from iprotod within ${startup_timeout}s (got: \"$line\")" >&2
    return 1
}

passed=0
failed=0
shopt -s nullglob
bins=("$fixtures_dir"/*.bin)
shopt -u nullglob
if [[ ${#bins[@]} -eq 0 ]]; then
    echo "$0: no fixtures in $fixtures_dir (run generate.sh)" >&2
    exit 2
fi

for bin in "${bins[@]}"; do
    name=$(basename "$bin" .bin)
    expected="$fixtures_dir/$name.expected"
    out="$tmp/$name.out"
    problem=""
    flags=()
    if [[ -f $fixtures_dir/$name.args ]]; then read -r -a flags <"$fixtures_dir/$name.args"; fi

    if [[ ! -f $expected ]]; then
        problem="missing $name.expected"
    elif ! start_server "${flags[@]}"; then
        problem="server did not start"
    else
        nc_status=0
        timeout "$reply_timeout" nc -N 127.0.0.1 "$port" <"$bin" >"$out" || nc_status=$?
        stop_status=0
        stop_server || stop_status=$?
        if ! cmp -s "$expected" "$out"; then
            problem="reply differs from $name.expected"
        elif [[ $nc_status -ne 0 ]]; then
            problem="nc exited with status $nc_status"
        elif [[ $stop_status -ne 0 ]]; then
            problem="iprotod exited with status $stop_status after SIGTERM"
        fi
    fi

    if [[ -z $problem ]]; then
        echo "ok $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        echo "  $problem"
        if [[ -f $expected && -f $out ]]; then
            echo "  expected ($(wc -c <"$expected") bytes):"
            xxd "$expected" | sed 's/^/    /'
            echo "  got ($(wc -c <"$out") bytes):"
            xxd "$out" | sed 's/^/    /'
            cmp "$expected" "$out" 2>&1 | sed 's/^/  /' || true
        fi
        if [[ -s $tmp/stderr ]]; then
            echo "  server log:"
            sed 's/^/    /' "$tmp/stderr"
        fi
        failed=$((failed + 1))
    fi
    stop_server || true
done

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
