#!/usr/bin/env python3
"""The disk's own sync latency: the floor under every durable write's.

    bench/fsync_probe.py DIR SECONDS   → one JSON line

Appends 100 bytes and fdatasyncs, one after another, for SECONDS in a file in
DIR (then removes it), as a replica's commit does, and prints the latencies'
percentiles in microseconds and the share of the run spent in syncs slower
than 5 ms: while one of those lasts, every write waiting for it waits too.
"""
import json
import os
import sys
import time


def main() -> None:
    directory, seconds = sys.argv[1], float(sys.argv[2])
    path = os.path.join(directory, f"fsync-probe.{os.getpid()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    latencies = []
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            os.write(fd, b"x" * 100)
            start = time.monotonic()
            os.fdatasync(fd)
            latencies.append(time.monotonic() - start)
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()
    n = len(latencies)
    at = lambda q: round(latencies[min(n - 1, int(n * q))] * 1e6)
    print(json.dumps({
        "syncs": n, "p50": at(0.5), "p99": at(0.99), "p999": at(0.999), "max": round(latencies[-1] * 1e6),
        "slow_share": sum(x for x in latencies if x > 0.005) / seconds,
    }))


if __name__ == "__main__":
    main()
