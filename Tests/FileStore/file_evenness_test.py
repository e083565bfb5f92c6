#!/usr/bin/env python3
"""The file store's evenness targets, end to end: real processes, real uploads, the nodes' own figures.

    Tests/FileStore/file_evenness_test.py BIN_DIR [--initial N] [--later M] [--max-size SIZE]
        [--clients C] [--seed S] [--out DIR]

A gateway and 6 storage nodes (iproto-filegw, iproto-volumed, free ports of 127.0.0.1,
the default parity of 1, every node the same --capacity) take N uploads with sizes
log-uniform in 1 KiB - --max-size, from C clients at once (so placement must see the
uploads in flight through their reservations); then 2 nodes join and M more uploads
follow, with no rebalance; then 2 more nodes join and an online rebalance runs while
readers GET files and check their bytes. Spread is max/min over the live nodes of the
bytes they hold (`GET /nodes`: `live_bytes`, the committed parts placed on a node,
and `used_bytes`, what its volumes take on its disk). The issue's targets:

    after the N uploads onto 6 nodes          max/min <= 1.05
    after 2 nodes join and M more uploads     max/min <= 1.10
    the rebalance after 2 more nodes join     max/min <= 1.05 when it ends; the fullest
                                              node's bytes never rise and the emptiest's
                                              never fall while it runs; every GET intact

The defaults are the issue's scale (1,000 and 6,000 uploads up to 64 MiB: about 40 GiB
of files, 48 GiB on disk; `make files-evenness`). `make file-test` runs a short form
(60 and 360 uploads up to 8 MiB), which keeps the ratio of later to initial uploads
that catching up needs (a joining node gains one part per upload, the others 4/6 of
one, so the gap closes after about 3 x N uploads). Writes summary.json (the spread
after every 10 % of each phase, the rebalance's samples) under --out; exit 0 when
every target holds.
"""
import argparse
import hashlib
import http.client
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import file_store_test as harness  # noqa: E402

MIN_SIZE = 1 << 10
CAPACITY = 200 << 30


def byte_size(text):
    """A size such as 65536, 8M or 64M (K, M, G: powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1:].upper() in units else int(text)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def spread(nodes, field):
    values = [n[field] for n in nodes if n["alive"]]
    return max(values) / min(values) if min(values) > 0 else math.inf


class Bodies:
    """Unique bodies without generating gigabytes of randomness: a tag, then a slice of one random pool."""

    def __init__(self, max_size, seed):
        self.pool = random.Random(seed).randbytes(max_size)
        self.max_size = max_size

    def body(self, number, size):
        tag = f"file {number}\n".encode()[:size]
        start = (number * 7919) % (len(self.pool) - size + 1)
        return tag + self.pool[start:start + size - len(tag)]


class Uploads:
    """Uploads files `first`..`first+count-1` from `clients` threads; records each name's size for reads."""

    def __init__(self, cluster, bodies, sizes, files):
        self.cluster, self.bodies, self.sizes, self.files = cluster, bodies, sizes, files
        self.lock = threading.Lock()

    def run(self, first, count, clients, on_progress):
        numbers = iter(range(first, first + count))
        done, errors = [0], []

        def client():
            while True:
                with self.lock:
                    number = next(numbers, None)
                if number is None or errors:
                    return
                size = self.sizes[number]
                name = f"even/{number:05d}"
                try:
                    status, _, reply = self.cluster.put(name, self.bodies.body(number, size))
                except OSError as error:
                    status, reply = None, str(error)
                with self.lock:
                    if status != 201:
                        errors.append(f"PUT {name} ({size} bytes): {status} {reply}")
                        return
                    self.files[name] = (number, size)
                    done[0] += 1
                    on_progress(done[0])

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return errors


def phase(cluster, uploads, first, count, clients, label, summary):
    """Uploads `count` files; returns the spreads at its end. Samples the spread after every tenth."""
    samples = []
    marks = {max(1, count * k // 10) for k in range(1, 11)}
    started = time.time()

    def on_progress(done):
        if done in marks:
            nodes = cluster.node_list()
            samples.append({"uploads": done, "live": spread(nodes, "live_bytes"), "used": spread(nodes, "used_bytes")})

    errors = uploads.run(first, count, clients, on_progress)
    if errors:
        raise AssertionError(f"{label}: {errors[:3]}")
    nodes = cluster.node_list()
    result = {"uploads": count, "seconds": round(time.time() - started, 1),
              "live": spread(nodes, "live_bytes"), "used": spread(nodes, "used_bytes"),
              "nodes": [{k: n[k] for k in ("address", "live_bytes", "used_bytes", "parts")} for n in nodes], "samples": samples}
    summary[label] = result
    log(f"{label}: {count} uploads in {result['seconds']} s; max/min live {result['live']:.4f}, used {result['used']:.4f}; "
        f"along the way: {', '.join('%d: %.3f' % (s['uploads'], s['live']) for s in samples)}")
    return result


def rebalance(cluster, files, bodies, summary):
    """Runs the rebalance with readers checking bytes; returns (failures, samples, progress)."""
    stop, failures, reads, samples = threading.Event(), [], [0], []
    names = sorted(files)

    def reader(seed):
        chooser = random.Random(seed)
        while not stop.is_set():
            name = chooser.choice(names)
            number, size = files[name]
            status, _, body = cluster.get(name)
            reads[0] += 1
            if status != 200 or hashlib.sha256(body).digest() != hashlib.sha256(bodies.body(number, size)).digest():
                failures.append((name, status, len(body)))

    readers = [threading.Thread(target=reader, args=(seed,)) for seed in range(2)]
    for thread in readers:
        thread.start()
    started = time.time()
    status, _, body = cluster.request("POST", "/admin/rebalance?target=1.05")
    if status != 202:
        raise AssertionError(f"rebalance did not start: {status} {body}")
    while True:
        progress = json.loads(cluster.request("GET", "/admin/rebalance")[2])
        nodes = cluster.node_list()
        # Over every node, alive or not: a busy node that misses a probe (the harness's
        # --liveness-timeout is 1 s) must not look like the spread moving.
        live = [n["live_bytes"] for n in nodes]
        samples.append({"t": round(time.time() - started, 2), "max": max(live), "min": min(live), "moved": progress["parts_moved"],
                        "alive": sum(1 for n in nodes if n["alive"])})
        if not progress["running"]:
            break
        time.sleep(0.2)
    stop.set()
    for thread in readers:
        thread.join()
    summary["rebalance"] = {"seconds": round(time.time() - started, 1), "progress": progress, "reads": reads[0],
                            "read_failures": failures[:10], "samples": samples}
    return failures, reads[0], samples, progress


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bin")
    parser.add_argument("--initial", type=int, default=1000)
    parser.add_argument("--later", type=int, default=6000)
    parser.add_argument("--max-size", type=byte_size, default=64 << 20, help="the largest file (K, M, G suffixes)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()
    if not MIN_SIZE <= args.max_size <= harness.MAX_FILE:
        parser.error(f"--max-size must be {MIN_SIZE} - {harness.MAX_FILE} (the gateway's --max-file-size here)")
    harness.BIN = args.bin
    harness.ROOT = tempfile.mkdtemp(prefix="filestore-evenness-")
    out = args.out or harness.ROOT
    os.makedirs(out, exist_ok=True)
    chooser = random.Random(args.seed)
    total = args.initial + args.later
    sizes = [int(math.exp(chooser.uniform(math.log(MIN_SIZE), math.log(args.max_size)))) for _ in range(total)]
    # Data and parity, and what the rebalance's moves leave behind until compaction.
    needed = sum(sizes) * 6 // 5 * 5 // 4
    free = shutil.disk_usage(harness.ROOT).free
    if needed > free:
        sys.exit(f"file_evenness_test: needs about {needed >> 30} GiB free under {harness.ROOT}, has {free >> 30} GiB; "
                 f"use smaller --later / --max-size")
    log(f"{total} uploads, {sum(sizes) / 2**30:.2f} GiB of files, sizes {MIN_SIZE} - {args.max_size} log-uniform, {args.clients} clients")
    failed, summary, cluster = [], {"args": vars(args)}, None
    bodies = Bodies(args.max_size, args.seed)
    files = {}
    try:
        # The defaults for the transfer budget (128 MiB) and the idle timeout (30 s), and a liveness timeout
        # longer than the default (3 s), not the harness's small ones (48 MiB, 2 s, 1 s): this test is
        # about placement, and under its load (300 MB/s of synced writes) a node's probe has been seen
        # to wait over a second behind its syncs.
        cluster = harness.Cluster(nodes=6, name="evenness", capacity=str(CAPACITY),
                                  gateway_args=("--transfer-memory", "128M", "--idle-timeout", "30", "--liveness-timeout", "5"))
        uploads = Uploads(cluster, bodies, sizes, files)
        for label, first, count, bound, joining in (("6 nodes", 0, args.initial, 1.05, 0), ("2 joined", args.initial, args.later, 1.10, 2)):
            for _ in range(joining):
                cluster.add_node()
            harness.wait_for(lambda: len([n for n in cluster.node_list() if n["alive"]]) == len(cluster.nodes), 20, "every node live")
            result = phase(cluster, uploads, first, count, args.clients, label, summary)
            for field in ("live", "used"):
                if result[field] > bound:
                    failed.append(f"{label}: after {count} uploads, max/min {field} bytes {result[field]:.4f} > {bound}")

        for _ in range(2):
            cluster.add_node()
        harness.wait_for(lambda: len([n for n in cluster.node_list() if n["alive"]]) == len(cluster.nodes), 20, "every node live")
        read_failures, reads, samples, progress = rebalance(cluster, files, bodies, summary)
        harness.wait_for(lambda: all(n["alive"] for n in cluster.node_list()), 20, "every node live")
        nodes = cluster.node_list()
        final = spread(nodes, "live_bytes")
        flaps = sum(1 for sample in samples if sample["alive"] < len(nodes))
        summary["rebalance"]["live"] = final
        log(f"rebalance: {progress['parts_moved']} parts ({progress['bytes_moved'] / 2**30:.2f} GiB) moved in "
            f"{summary['rebalance']['seconds']} s, max/min live {final:.4f}; {reads} GETs checked, {len(read_failures)} bad; "
            f"{flaps} of {len(samples)} samples with a node not answering its probes")
        if progress.get("error"):
            failed.append(f"rebalance: {progress['error']}")
        if final > 1.05:
            failed.append(f"after the rebalance, max/min live bytes {final:.4f} > 1.05")
        if read_failures:
            failed.append(f"GETs during the rebalance: {read_failures[:5]}")
        if reads < 5:
            failed.append(f"only {reads} GETs during the rebalance")
        for before, after in zip(samples, samples[1:]):
            if after["max"] > before["max"] or after["min"] < before["min"]:
                failed.append(f"the spread grew while parts moved: {before} then {after}")
                break
        # Every file once more, after the moves.
        for name, (number, size) in sorted(files.items())[:: max(1, len(files) // 200)]:
            status, _, body = cluster.get(name)
            if status != 200 or body != bodies.body(number, size):
                failed.append(f"GET {name} after the rebalance: {status}, {len(body)} bytes")
    except AssertionError as error:
        failed.append(str(error))
    finally:
        if cluster:
            cluster.stop()
    summary["failed"] = failed
    with open(os.path.join(out, "summary.json"), "w") as file:
        json.dump(summary, file, indent=2)
    for line in failed:
        log("FAIL " + line)
    log("evenness targets met" if not failed else f"evenness targets NOT met ({len(failed)} problems); see {out}")
    if not os.environ.get("FILES_TEST_KEEP"):
        shutil.rmtree(harness.ROOT, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
