#!/usr/bin/env python3
"""A node that stays gone: its keys are copied again until each has RF live copies.

    Tests/Cluster/kv_rereplication_test.py BIN_DIR [--nodes 4] [--rf 2] [--keys 10000]
        [--grace 5] [--limit 60]

Starts etcd and NODES iproto-kvd nodes with --dead-node-grace GRACE, writes KEYS
keys through the leader (pipelined on one connection), checks that every key
has RF copies, kills -9 one node that is not the leader and never restarts it,
and measures how long until every key again has RF copies of its newest version
on the live nodes (KV_REPLICA_SCAN on each). Passes when that happens within
GRACE + LIMIT seconds and every key still reads back its value through the
leader. Prints the figures; exits 0 on pass, 1 on fail, 2 if setup failed.
"""
import argparse
import os
import shutil
import socket
import struct
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import kv  # noqa: E402
from iproto import frame, read_reply  # noqa: E402


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pipelined_sets(address, items, window=512):
    """SET every (key, value) on one connection, up to `window` in flight; the codes."""
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    codes = {}
    sent = 0
    received = 0
    while received < len(items):
        burst = b""
        while sent < len(items) and sent - received < window:
            key, value = items[sent]
            burst += frame(kv.KV_SET, sent, kv.pack(key, value))
            sent += 1
        if burst:
            sock.sendall(burst)
        _, request_id, code, body = read_reply(sock)
        codes[request_id] = (code, body)
        received += 1
    sock.close()
    return codes


def copies(nodes, keys):
    """Per key, how many of `nodes` hold its newest version."""
    newest = {}
    holders = {}
    for node in nodes:
        client = kv.Node(node.address, timeout=5)
        after = ""
        while True:
            outcome, page = client.replica_scan(after, 10000)
            if outcome != kv.OK:
                raise RuntimeError(f"KV_REPLICA_SCAN on {node.address}: {page}")
            found, versions = page
            for key, version in zip(found, versions):
                if version > newest.get(key, 0):
                    newest[key] = version
                    holders[key] = {node.address}
                elif version == newest.get(key, 0):
                    holders.setdefault(key, set()).add(node.address)
            if len(found) < 10000:
                break
            after = found[-1]
        client.close()
    return {key: len(holders.get(key, ())) for key in keys}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bin_dir")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--rf", type=int, default=2)
    parser.add_argument("--keys", type=int, default=10000)
    parser.add_argument("--grace", type=float, default=5)
    parser.add_argument("--limit", type=float, default=60)
    args = parser.parse_args()
    binary = os.path.join(args.bin_dir, "iproto-kvd")
    work = tempfile.mkdtemp(prefix="kv-rerep-")
    etcd, nodes = None, []
    try:
        etcd = kv.Etcd(log=os.path.join(work, "etcd.log"))
        common = ["--replication-factor", str(args.rf), "--lease-ttl", "1", "--dead-node-grace", str(args.grace),
                  "--cluster", f"rerep{os.getpid()}"]
        for index in range(args.nodes):
            find = ["--etcd", etcd.url] if index == 0 else ["--join", nodes[0].address]
            nodes.append(kv.KVNode(binary, ["--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, f"n{index}")]
                                   + common + find, os.path.join(work, f"n{index}.log")))
        cluster = kv.Cluster([n.address for n in nodes])
        deadline = time.monotonic() + 20
        leader = None
        while time.monotonic() < deadline:
            outcome, status = cluster.heartbeat()
            if outcome == kv.OK and status.get("leader") and all(n["alive"] for n in status["nodes"]) \
                    and len(status["nodes"]) == args.nodes and not status["warnings"]:
                leader = status["leader"]
                break
            time.sleep(0.2)
        if leader is None:
            print(f"SETUP FAILED: no leader with {args.nodes} live nodes in 20 s; logs in {work}")
            return 2
        time.sleep(3)  # let the joins' placement changes settle
        items = [(str(uuid.uuid4()), f"value-{i}") for i in range(args.keys)]
        started = time.monotonic()
        codes = pipelined_sets(leader, items)
        failed = [(i, c) for i, (c, _) in codes.items() if c != 0]
        log(f"wrote {args.keys} keys in {time.monotonic() - started:.2f} s through {leader}; {len(failed)} refused")
        if failed:
            print(f"FAIL: writes refused with all nodes up: {failed[:5]}")
            return 1
        keys = [k for k, _ in items]
        before = copies(nodes, keys)
        short = sum(1 for n in before.values() if n < args.rf)
        log(f"before: {short} keys with fewer than {args.rf} copies")
        victim = next(n for n in nodes if n.address != leader)
        victim.kill()
        killed = time.monotonic()
        live = [n for n in nodes if n is not victim]
        log(f"killed {victim.address} (kill -9, not restarted); grace {args.grace} s")
        first_short = None
        while True:
            counts = copies(live, keys)
            short = sum(1 for n in counts.values() if n < args.rf)
            now = time.monotonic() - killed
            if short and first_short is None:
                first_short = short
            if short == 0:
                break
            if now > args.grace + args.limit:
                print(f"FAIL: {short} of {args.keys} keys still have fewer than {args.rf} live copies "
                      f"{now:.1f} s after the kill (grace {args.grace} s + {args.limit} s); logs in {work}")
                return 1
            time.sleep(1)
        elapsed = time.monotonic() - killed
        log(f"every key has {args.rf} live copies {elapsed:.1f} s after the kill "
            f"({elapsed - args.grace:.1f} s after the grace period); {first_short} keys were short")
        wrong = 0
        for key, value in items[:: max(1, args.keys // 500)]:
            outcome, got = cluster.get(key)
            if outcome != kv.OK or got != value:
                wrong += 1
        if wrong:
            print(f"FAIL: {wrong} sampled keys do not read back their value after re-replication")
            return 1
        if not first_short:
            print("FAIL: no key lost a copy when a node died: the test did not test anything")
            return 1
        print(f"PASS: {args.keys} keys, {first_short} short of copies after the kill, back to RF {args.rf} "
              f"{elapsed:.1f} s after it (grace {args.grace} s)")
        return 0
    except RuntimeError as error:
        print(f"SETUP FAILED: {error}; logs in {work}")
        return 2
    finally:
        for node in nodes:
            node.kill()
        if etcd:
            etcd.stop()
        if os.environ.get("KEEP_LOGS") is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
