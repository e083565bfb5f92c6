#!/usr/bin/env python3
"""The file store's history test: concurrent PUT, GET and DELETE under kill -9, checked.

    Tests/FileStore/file_history_test.py BIN_DIR [--seconds S] [--clients N] [--keys K] [--seed N] [--out DIR]

A gateway and 8 storage nodes run as real processes (iproto-filegw, iproto-volumed, on
free ports of 127.0.0.1, the default parity of 1). N clients put, get and delete files
under K names, every body unique (its SHA-256 is the value written), while a nemesis,
every 1-3 s, kills one storage node with SIGKILL and starts it again 0.5-2 s later, or
kills the gateway with SIGKILL and starts it again at once. Every operation is recorded
with its outcome:

    ok       the gateway answered: PUT 200/201, DELETE 204/404, GET 200 with a whole body, GET 404
    fail     the gateway answered an error (the store promises an upload that fails leaves
             nothing visible), or the connection was refused before anything was sent
    unknown  the connection broke after the request was sent: it may have taken effect

Then the nemesis stops, every process is running, and each name is read once more.
The checker (Tests/lib/linearizability.py, the key-value cluster's) then requires each
name's history to be linearizable as a register: no acknowledged PUT or DELETE lost,
no read of an older version after a newer one was acknowledged, and no body that is not
exactly one that a PUT sent (nothing half-visible, nothing mixed). The final reads must
all succeed. Writes history.jsonl and summary.json under --out; exit 0 when it holds.
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import file_store_test as harness  # noqa: E402
from linearizability import check_history, describe  # noqa: E402

BLOCK = 5 << 20


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class History:
    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()

    def add(self, op):
        with self.lock:
            op["id"] = len(self.ops)
            self.ops.append(op)


class Client(threading.Thread):
    """Puts, gets and deletes files under `keys`, recording every operation."""

    def __init__(self, number, cluster, keys, history, stop, seed):
        super().__init__(daemon=True)
        self.number, self.cluster, self.keys, self.history, self.stop = number, cluster, keys, history, stop
        self.random = random.Random(seed)
        self.counter = 0

    def body(self):
        # Sizes around the block's edges and a few blocks; every body unique (it starts with its tag).
        self.counter += 1
        tag = f"client {self.number} write {self.counter}\n".encode()
        size = self.random.choice([len(tag), 4999, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 7, self.random.randrange(len(tag), 2 * BLOCK)])
        return tag + self.random.randbytes(size - len(tag))

    def run(self):
        while not self.stop.is_set():
            key = self.random.choice(self.keys)
            roll = self.random.random()
            if roll < 0.45:
                self.put(key)
            elif roll < 0.55:
                self.delete(key)
            else:
                self.get(key)

    def request(self, method, key, body=None):
        """(status, body) or raises: ConnectionRefusedError before sending, OSError after."""
        host, port = self.cluster.gateway.address.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.connect()
        except OSError as error:
            connection.close()
            raise ConnectionRefusedError(str(error))
        try:
            connection.request(method, "/files/" + urllib.parse.quote(key, safe="/"), body=body)
            response = connection.getresponse()
            data = response.read()
            length = response.getheader("Content-Length")
            if length is not None and int(length) != len(data):
                raise OSError(f"a body of {len(data)} bytes, not {length}")
            return response.status, data
        finally:
            connection.close()

    def put(self, key):
        data = self.body()
        value = hashlib.sha256(data).hexdigest()
        op = {"key": key, "kind": "set", "value": value, "size": len(data), "client": self.number, "start": time.monotonic()}
        try:
            status, reply = self.request("PUT", key, data)
            op["status"] = status
            op["outcome"] = "ok" if status in (200, 201) else "fail"
            if op["outcome"] == "ok" and json.loads(reply).get("size") != len(data):
                op["outcome"], op["note"] = "unknown", f"acknowledged with {reply[:200]!r}"
        except ConnectionRefusedError:
            op["outcome"] = "fail"
        except (OSError, http.client.HTTPException, ValueError) as error:
            op["outcome"], op["note"] = "unknown", str(error)
        op["end"] = time.monotonic()
        self.history.add(op)

    def delete(self, key):
        op = {"key": key, "kind": "delete", "value": None, "client": self.number, "start": time.monotonic()}
        try:
            status, _ = self.request("DELETE", key)
            op["status"] = status
            op["outcome"] = "ok" if status in (204, 404) else "fail"
        except ConnectionRefusedError:
            op["outcome"] = "fail"
        except (OSError, http.client.HTTPException) as error:
            op["outcome"], op["note"] = "unknown", str(error)
        op["end"] = time.monotonic()
        self.history.add(op)

    def get(self, key, final=False):
        op = {"key": key, "kind": "get", "client": self.number, "start": time.monotonic(), "final": final}
        try:
            status, data = self.request("GET", key)
            op["status"] = status
            if status == 200:
                op["outcome"], op["value"], op["size"] = "ok", hashlib.sha256(data).hexdigest(), len(data)
            elif status == 404:
                op["outcome"], op["value"] = "ok", None
            else:
                op["outcome"], op["note"] = "fail", data[:200].decode(errors="replace")
        except (OSError, http.client.HTTPException) as error:
            op["outcome"], op["note"] = "fail", f"cut off: {error}"
        op["end"] = time.monotonic()
        self.history.add(op)
        return op


class Nemesis(threading.Thread):
    """Every 1-3 s: kill -9 one storage node and start it again, or the gateway."""

    def __init__(self, cluster, stop, seed, events):
        super().__init__(daemon=True)
        self.cluster, self.stop, self.random, self.events = cluster, stop, random.Random(seed), events

    def run(self):
        while not self.stop.wait(self.random.uniform(1, 3)):
            if self.random.random() < 0.2:
                self.events.append((time.monotonic(), "kill -9 gateway"))
                self.cluster.gateway.kill()
                self.cluster.gateway.start()
                self.events.append((time.monotonic(), "gateway started"))
            else:
                number = self.random.randrange(len(self.cluster.nodes))
                node = self.cluster.nodes[number]
                self.events.append((time.monotonic(), f"kill -9 node{number}"))
                node.kill()
                self.stop.wait(self.random.uniform(0.5, 2))
                node.start()
                self.events.append((time.monotonic(), f"node{number} started"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bin")
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--keys", type=int, default=5)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    harness.BIN = args.bin
    harness.ROOT = tempfile.mkdtemp(prefix="filehistory-")
    out = args.out or harness.ROOT
    os.makedirs(out, exist_ok=True)
    log(f"seed {args.seed}, {args.seconds:g} s, {args.clients} clients, {args.keys} names, in {harness.ROOT}")
    cluster = None
    failed = []
    try:
        cluster = harness.Cluster(nodes=8, capacity="4G")
        # The gateway comes back where the nodes register (--gateway URL), as in production.
        cluster.gateway.args[cluster.gateway.args.index("--listen") + 1] = cluster.gateway.address
        keys = [f"history/{i}" for i in range(args.keys - 1)] + ["history/deep/ünï code"]
        history, stop, events = History(), threading.Event(), []
        clients = [Client(i, cluster, keys, history, stop, args.seed * 100 + i) for i in range(args.clients)]
        nemesis = Nemesis(cluster, stop, args.seed, events)
        for thread in clients + [nemesis]:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in clients + [nemesis]:
            thread.join(timeout=120)
        # Heal: everything running and known alive, then read every name once more.
        for process in [cluster.gateway] + cluster.nodes:
            if process.process.poll() is not None:
                process.start()
        harness.wait_for(lambda: len([n for n in cluster.node_list() if n["alive"]]) == len(cluster.nodes), 30, "every node alive")
        final = [clients[0].get(key, final=True) for key in keys]
        bad_final = [describe(op) + f" {op.get('note', '')}" for op in final if op["outcome"] != "ok"]
        if bad_final:
            failed.append(f"final reads failed: {bad_final}")

        ops = history.ops
        with open(os.path.join(out, "history.jsonl"), "w") as file:
            for op in ops:
                file.write(json.dumps(op) + "\n")
        counts = {}
        for op in ops:
            counts[f"{op['kind']} {op['outcome']}"] = counts.get(f"{op['kind']} {op['outcome']}", 0) + 1
        kills = sum(1 for _, event in events if event.startswith("kill"))
        verdicts = check_history(ops, time_budget_s=120)
        for key, verdict in sorted(verdicts.items()):
            log(f"{key!r}: {verdict.result} ({verdict.ops} ops, {verdict.steps} steps)")
            if verdict.result != "ok":
                failed.append(f"{key!r}: {verdict.result}: {verdict.explanation}")
        acknowledged = counts.get("set ok", 0) + counts.get("delete ok", 0)
        summary = {"seed": args.seed, "seconds": args.seconds, "ops": len(ops), "counts": counts, "kills": kills,
                   "events": [event for _, event in events], "acknowledged_writes": acknowledged, "failed": failed}
        with open(os.path.join(out, "summary.json"), "w") as file:
            json.dump(summary, file, indent=2)
        log(f"{len(ops)} ops ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}), {kills} kills")
        # A run the nemesis starved proves nothing: ask for a real workload.
        if kills < max(3, int(args.seconds / 6)):
            failed.append(f"only {kills} kills")
        if counts.get("set ok", 0) < 3 * args.keys or counts.get("get ok", 0) < 5 * args.keys:
            failed.append(f"too few acknowledged operations: {counts}")
    finally:
        if cluster:
            cluster.stop()
    for line in failed:
        log("FAIL " + line)
    log("history holds" if not failed else f"history does NOT hold ({len(failed)} problems); see {out}")
    if not failed and not os.environ.get("FILES_TEST_KEEP") and not args.out:
        shutil.rmtree(harness.ROOT, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
