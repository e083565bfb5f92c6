#!/usr/bin/env bash
# How much snapshots stall requests: iprotod --data-dir with a snapshot every
# 10 ms against snapshots off, each under the same paced load (10 connections,
# 2,000 requests/s in all, 90% reads), RUNS times each; prints p50, p99 and max
# latency per run. Not part of make test (timings); figures in docs/benchmarks.md.
#
#   bench/snapshot_stall.sh IPROTOD IPROTO [LABEL IPROTOD ...]   (RUNS=3, SECONDS=5)
set -euo pipefail
iproto=$2
runs=${RUNS:-3}
seconds=${SECONDS_PER_RUN:-5}
servers=("$1")
labels=("iprotod")
shift 2
while (($# >= 2)); do labels+=("$1"); servers+=("$2"); shift 2; done

for i in "${!servers[@]}"; do
    for interval in 3600 0.01; do
        for ((run = 1; run <= runs; run++)); do
            dir=$(mktemp -d)
            # The environment, not a flag: a binary without the per-address limit ignores it.
            IPROTOD_RATE_LIMIT_PER_IP=0 "${servers[$i]}" --listen 127.0.0.1:0 --metrics-listen "" --data-dir "$dir/data" \
                --snapshot-interval "$interval" --rate-limit 0 >"$dir/out" 2>/dev/null &
            pid=$!
            for _ in $(seq 100); do [[ -s $dir/out ]] && break; sleep 0.05; done
            port=$(head -n 1 "$dir/out" | sed 's/.*://')
            "$iproto" bench --port "$port" --connections 10 --rate 2000 --duration "$seconds" \
                --mix read=90,replace=10 --json >"$dir/bench.json" 2>/dev/null
            snapshots=$(ls "$dir/data" | grep -c '^snapshot$' || true)
            kill "$pid"
            wait "$pid" 2>/dev/null || true
            python3 - "$dir/bench.json" "${labels[$i]}" "$interval" "$run" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
l = d["latency_us"]
print(f"{sys.argv[2]:<12} snapshot-interval {sys.argv[3]:>5} run {sys.argv[4]}: {d['requests']} requests, "
      f"p50 {l['p50'] / 1000:.2f} ms, p99 {l['p99'] / 1000:.2f} ms, max {l['max'] / 1000:.2f} ms, errors {d['errors']}")
PY
            rm -rf "$dir"
        done
    done
done
