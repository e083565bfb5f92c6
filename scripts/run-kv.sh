#!/usr/bin/env bash
# A local key-value cluster on loopback: one etcd and three iproto-kvd nodes
# (replication factor 2), each with its data under $KV_DIR (default .run-kv/,
# kept across runs, so a second `make run-kv` finds the same cluster). Ctrl-C
# stops everything.
#
#   scripts/run-kv.sh BIN_DIR        (make run-kv builds and passes it)
set -euo pipefail
bin=${1:?usage: $0 BIN_DIR}
dir=${KV_DIR:-.run-kv}
etcd_port=${KV_ETCD_PORT:-2379}
base_port=${KV_BASE_PORT:-4001}
mkdir -p "$dir"
pids=()
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "stopping the nodes and etcd"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

etcd --name run-kv --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-cluster "run-kv=http://127.0.0.1:$((etcd_port + 1))" \
    --heartbeat-interval 25 --election-timeout 250 --log-level error >"$dir/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
    sleep 0.1
done

start_node() { # index, then the flags that find the cluster
    local index=$1 port=$((base_port + $1 - 1))
    shift
    "$bin/iproto-kvd" --listen "127.0.0.1:$port" --data-dir "$dir/node$index" --lease-ttl 1 \
        --metrics-listen "127.0.0.1:$((port + 5000))" "$@" >"$dir/node$index.out" 2>"$dir/node$index.log" &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q "listening on" "$dir/node$index.out" 2>/dev/null && return
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$dir/node$index.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "node $index did not start; see $dir/node$index.log" >&2
    exit 1
}
start_node 1 --etcd "http://127.0.0.1:$etcd_port"
start_node 2 --join "127.0.0.1:$base_port"
start_node 3 --join "127.0.0.1:$base_port"

cat <<TEXT
A key-value cluster runs on loopback (data and logs in $dir/):
  etcd    http://127.0.0.1:$etcd_port
  nodes   127.0.0.1:$base_port 127.0.0.1:$((base_port + 1)) 127.0.0.1:$((base_port + 2))  (replication factor 2)
  metrics http://127.0.0.1:$((base_port + 5000))/metrics (and the next two ports)

Connect:     $bin/iproto kv --node 127.0.0.1:$base_port,127.0.0.1:$((base_port + 1)),127.0.0.1:$((base_port + 2))
One-shot:    $bin/iproto kv set 0b5c8f5e-4a3b-4c1d-9e2f-1a2b3c4d5e6f hello
A 4th node:  $bin/iproto-kvd --listen 127.0.0.1:$((base_port + 3)) --data-dir $dir/node4 --join 127.0.0.1:$base_port
Ctrl-C stops the cluster.
TEXT
wait -n "${pids[@]}"
