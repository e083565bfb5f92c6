#!/usr/bin/env python3
"""Black-box behaviour tests of iproto-kvd (the wire API and return codes of /work/kv-spec.md).

    Tests/Cluster/kv_behaviour_test.py BIN_DIR [unittest args, e.g. -k test_08]

Every test starts etcd and iproto-kvd nodes from BIN_DIR on free ports of 127.0.0.1
(tests 1-7 share one 3-node RF 2 cluster; 8, 9, 10 and 10b get their own), asserts exact
replies, and stops everything it started, even on failure (its own pids only; a
watchdog ends the run after WATCHDOG_S). Temp dirs go under one kvbehave-* dir that is
removed at the end; KV_BEHAVE_KEEP=1 keeps it (node and etcd logs) and prints its path.

Prints one summary line; exit 0 when every test passed, 1 when one failed, 2 when the
binary is missing. Runtime about 1-2 minutes.
"""
import atexit
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import kv  # noqa: E402
from iproto import frame, read_reply  # noqa: E402

KV_SET, KV_GET, KV_DELETE, KV_HEARTBEAT = 0x00030001, 0x00030002, 0x00030003, 0x00030004
KV_REPLICA_WRITE, KV_REPLICA_READ, KV_REPLICA_SCAN = 0x00031001, 0x00031002, 0x00031005
OK = 0
UNKNOWN_REQUEST = 1
BAD_REQUEST = 2
BAD_ARGUMENTS = 3
OUT_OF_RANGE = 4
TOO_LONG = 5
NOT_LEADER = 0x201
NO_LEADER = 0x202
REPLICAS_UNAVAILABLE = 0x203
KV_OUTCOME_UNKNOWN = 0x204
STALE_EPOCH = 0x205
UNKNOWN_EPOCH = 0x209

MAX_VALUE = 1024
TEST_TIMEOUT_S = 45
WATCHDOG_S = 300

BINARY = None
ROOT = None
ETCD_DIRS = []  # kv.Etcd's own temp dirs (outside ROOT)
STARTED = []  # every Popen this run started (nodes, etcd, rejected nodes): only these are ever killed


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def kill_everything():
    for process in STARTED:
        if process.poll() is None:
            try:
                process.kill()
            except OSError:
                pass
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def pack(*args):
    return b"".join(msgpack.packb(a, use_bin_type=True) for a in args)


def raw_call(address, func_id, body=b"", timeout=3.0):
    """(return_code, raw reply body) on a fresh connection."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=min(timeout, 1.0)) as sock:
        sock.settimeout(timeout)
        sock.sendall(frame(func_id, 7, body))
        while True:
            _, request_id, code, reply = read_reply(sock)
            if request_id == 7:
                return code, reply


def decode(body):
    return None if not body else msgpack.unpackb(body, raw=False)


def call(address, func_id, *args, timeout=3.0):
    code, body = raw_call(address, func_id, pack(*args), timeout)
    return code, decode(body)


def heartbeat(address, timeout=1.0):
    try:
        code, reply = call(address, KV_HEARTBEAT, timeout=timeout)
    except (OSError, ValueError):
        return None
    return reply if code == OK and isinstance(reply, dict) else None


def scan_all(address):
    """{key: version} of a node's KV_REPLICA_SCAN, every page."""
    records, after = {}, ""
    while True:
        code, reply = call(address, KV_REPLICA_SCAN, after, 500)
        if code != OK:
            raise AssertionError(f"KV_REPLICA_SCAN on {address}: code 0x{code:x} {reply!r}")
        keys, versions = reply
        if not keys:
            return records
        records.update(zip(keys, versions))
        after = keys[-1]


def new_key():
    return str(uuid.uuid4())


class Cluster:
    """etcd and iproto-kvd nodes in ROOT/name: node 0 with --etcd, the others --join node 0."""

    def __init__(self, name, count=3, rf=2, extra=()):
        self.dir = os.path.join(ROOT, name)
        os.makedirs(self.dir)
        self.rf = rf
        self.extra = list(extra)
        self.etcd = kv.Etcd(log=os.path.join(self.dir, "etcd.log"))
        STARTED.append(self.etcd.process)
        ETCD_DIRS.append(self.etcd.dir)
        self.nodes = []
        for index in range(count):
            self.nodes.append(self.start_new(index))

    def start_new(self, index):
        port = kv.free_port()
        data = os.path.join(self.dir, f"node{index}")
        base = ["--listen", f"127.0.0.1:{port}", "--data-dir", data, "--replication-factor", str(self.rf)] + self.extra
        entry = ["--etcd", self.etcd.url] if index == 0 else ["--join", self.nodes[0].address]
        node = self._launch(base + entry, index)
        node.base_args = base
        return node

    def _launch(self, args, index):
        node = kv.KVNode(BINARY, args, os.path.join(self.dir, f"node{index}.log"))
        node.started = time.monotonic()
        node.index = index
        STARTED.append(node.process)
        return node

    def restart(self, node):
        """The same --listen and --data-dir, neither --etcd nor --join."""
        again = self._launch(node.base_args, node.index)
        again.base_args = node.base_args
        self.nodes[node.index] = again
        return again

    def live(self):
        return [n for n in self.nodes if n.alive()]

    def addresses(self):
        return [n.address for n in self.nodes]

    def by_address(self, address):
        return next(n for n in self.nodes if n.address == address)

    def leader(self, timeout=10.0):
        """The leader address the live nodes agree on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            views = [heartbeat(n.address) for n in self.live()]
            leaders = {v.get("leader") for v in views if v}
            if len(leaders) == 1 and None not in leaders and all(views):
                return leaders.pop()
            time.sleep(0.1)
        raise AssertionError(f"no agreed leader within {timeout} s")

    def wait_writable(self, timeout=15.0):
        """Until the leader answers 0 to a SET (every node up: any key has its replicas)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                leader = self.leader(timeout=max(0.1, deadline - time.monotonic()))
                last = call(leader, KV_SET, new_key(), "probe", timeout=2)
                if last[0] == OK:
                    return leader
            except (OSError, ValueError, AssertionError) as error:
                last = error
            time.sleep(0.1)
        raise AssertionError(f"cluster not writable within {timeout} s; last: {last!r}")

    def wait_ready(self, timeout=20.0):
        """Until every node's heartbeat is the full view, the leader takes SETs, and (a node serves
        reads as a replica ~2.5 s after its start) GETs of absent keys answer nil. The leader."""
        deadline = time.monotonic() + timeout
        while True:
            reasons = [check_view(heartbeat(n.address), self.addresses(), self.rf) for n in self.nodes]
            if not any(reasons):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster views not complete within {timeout} s: {reasons}")
            time.sleep(0.1)
        leader = self.wait_writable(timeout=max(1.0, deadline - time.monotonic()))
        time.sleep(max(0.0, max(n.started for n in self.nodes) + 2.5 - time.monotonic()))
        while True:
            answers = [call(leader, KV_GET, new_key()) for _ in range(10)]
            if all(a == (OK, None) for a in answers):
                return leader
            if time.monotonic() > deadline:
                raise AssertionError(f"GETs of absent keys not nil within {timeout} s: {answers}")
            time.sleep(0.2)

    def stop(self):
        for node in self.nodes:
            if node.alive():
                node.terminate(timeout=10)
        self.etcd.stop()

    def log_tails(self, lines=12):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".log") and name.startswith("node"):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
                out.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(out)


class TimedTest(unittest.TestCase):
    timeout_s = TEST_TIMEOUT_S

    def setUp(self):
        def expired(signum, frame):
            raise TimeoutError(f"test took over {self.timeout_s} s")
        signal.signal(signal.SIGALRM, expired)
        signal.alarm(self.timeout_s)

    def tearDown(self):
        signal.alarm(0)

    @classmethod
    def make_cluster(cls, name, **kwargs):
        cluster = Cluster(name, **kwargs)
        cls.addClassCleanup(cluster.stop)
        return cluster


def check_view(view, addresses, rf):
    """None if one heartbeat reply is a full, consistent view of `addresses`, else why not."""
    if not isinstance(view, dict):
        return f"no heartbeat reply ({view!r})"
    missing = {"nodes", "leader", "replication_factor", "warnings"} - set(view)
    if missing:
        return f"fields missing: {sorted(missing)} in {view!r}"
    nodes = view["nodes"]
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        return f"nodes is not an array of maps: {nodes!r}"
    for n in nodes:
        if not (isinstance(n.get("id"), str) and n["id"] and isinstance(n.get("address"), str)
                and n.get("role") in ("leader", "follower") and isinstance(n.get("alive"), bool)):
            return f"bad node entry {n!r}"
    if sorted(n["address"] for n in nodes) != sorted(addresses):
        return f"lists {sorted(n['address'] for n in nodes)}, expected {sorted(addresses)}"
    if len({n["id"] for n in nodes}) != len(nodes):
        return f"duplicate ids: {nodes!r}"
    if not all(n["alive"] for n in nodes):
        return f"not all alive: {nodes!r}"
    leaders = [n["address"] for n in nodes if n["role"] == "leader"]
    if len(leaders) != 1:
        return f"{len(leaders)} nodes with role leader: {nodes!r}"
    if view["leader"] != leaders[0]:
        return f"leader field {view['leader']!r} but role leader on {leaders[0]}"
    if view["replication_factor"] != rf:
        return f"replication_factor {view['replication_factor']!r}, expected {rf}"
    if not isinstance(view["warnings"], list) or not all(isinstance(w, str) for w in view["warnings"]):
        return f"warnings is not an array of strings: {view['warnings']!r}"
    return None


# ----------------------------------------------------------------- tests 1-7: one shared cluster

class SharedClusterTests(TimedTest):
    @classmethod
    def setUpClass(cls):
        cls.cluster = cls.make_cluster("shared", extra=["--max-value", str(MAX_VALUE)])
        # Test 1's observation starts right at the third node's listening line.
        third = cls.cluster.nodes[2].started
        deadline = third + 2.0
        cls.first_view = None
        cls.first_view_reasons = None
        while True:
            views = {n.address: heartbeat(n.address, timeout=0.5) for n in cls.cluster.nodes}
            reasons = {a: check_view(v, cls.cluster.addresses(), 2) for a, v in views.items()}
            leaders = {v["leader"] for v in views.values() if isinstance(v, dict) and "leader" in v}
            if not any(reasons.values()) and len(leaders) == 1:
                cls.first_view = (time.monotonic() - third, views)
                break
            cls.first_view_reasons = reasons if any(reasons.values()) else {"leaders": leaders}
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        cls.leader = cls.cluster.wait_ready()
        cls.followers = [a for a in cls.cluster.addresses() if a != cls.leader]

    def set(self, key, value, address=None):
        return call(address or self.leader, KV_SET, key, value)

    def get_raw(self, key, address=None):
        return raw_call(address or self.leader, KV_GET, pack(key))

    def test_01_heartbeat_lists_all_three_within_2s(self):
        self.assertIsNotNone(self.first_view, "within 2 s of the third node's listening line, not every node's "
                             f"KV_HEARTBEAT was a full consistent view; last problems: {self.first_view_reasons}")
        elapsed, views = self.first_view
        log(f"test_01: full consistent views on every node {elapsed:.2f} s after the third node's listening line")
        leaders = {v["leader"] for v in views.values()}
        self.assertEqual(len(leaders), 1)
        # Once writable, it is still consistent, and names the leader the SETs go to; no warnings.
        for address in self.cluster.addresses():
            view = heartbeat(address)
            self.assertIsNone(check_view(view, self.cluster.addresses(), 2), address)
            self.assertEqual(view["leader"], self.leader, address)
            self.assertEqual(view["warnings"], [], address)
            ids = {n["address"]: n["id"] for n in view["nodes"]}
            self.assertEqual(ids, {n["address"]: n["id"] for n in heartbeat(self.leader)["nodes"]})

    def test_02_set_get_delete_and_types(self):
        key = new_key()
        for follower in self.followers:
            code, message = self.set(key, "v1", follower)
            self.assertEqual(code, NOT_LEADER, message)
            self.assertIsInstance(message, str)
            self.assertTrue(message.endswith(self.leader), f"0x201 message {message!r} does not end with {self.leader}")
            for func in (KV_GET, KV_DELETE):
                code, message = call(follower, func, key)
                self.assertEqual(code, NOT_LEADER, message)
                self.assertTrue(message.endswith(self.leader), message)
        self.assertEqual(self.get_raw(key), (OK, b"\xc0"), "a SET refused with 0x201 took effect")
        self.assertEqual(self.set(key, "v1"), (OK, None))
        self.assertEqual(call(self.leader, KV_GET, key), (OK, "v1"))
        cases = [
            ("héllo wörld", lambda b: 0xA0 <= b[0] <= 0xBF),
            ("s" * 40, lambda b: b[0] == 0xD9),
            ("", lambda b: b == b"\xa0"),
            (b"\x00\xff\xfebin", lambda b: b[0] == 0xC4),
            (b"", lambda b: b == b"\xc4\x00"),
            (bytes(range(256)) * 2, lambda b: b[0] == 0xC5),
            ("31 ascii chars that look binary", lambda b: 0xA0 <= b[0] <= 0xBF),
        ]
        for value, type_ok in cases:
            with self.subTest(value=value[:12]):
                self.assertEqual(self.set(key, value), (OK, None), "SET overwrite")
                code, body = self.get_raw(key)
                self.assertEqual(code, OK)
                self.assertTrue(type_ok(body), f"GET of {type(value).__name__} {value[:12]!r}: body starts {body[:3].hex()}")
                got = decode(body)
                self.assertEqual(type(got), type(value))
                self.assertEqual(got, value)
        self.assertEqual(call(self.leader, KV_DELETE, key), (OK, None))
        self.assertEqual(self.get_raw(key), (OK, b"\xc0"))
        self.assertEqual(call(self.leader, KV_DELETE, key), (OK, None), "DELETE of a deleted key")
        self.assertEqual(call(self.leader, KV_DELETE, new_key()), (OK, None), "DELETE of a never-set key")
        self.assertEqual(self.get_raw(key), (OK, b"\xc0"))

    def assert_bad_key(self, key, *substrings):
        for func, args in ((KV_SET, (key, "x")), (KV_GET, (key,)), (KV_DELETE, (key,))):
            code, message = call(self.leader, func, *args)
            self.assertEqual(code, BAD_ARGUMENTS, f"func 0x{func:x} key {key!r}: {message!r}")
            self.assertIsInstance(message, str)
            self.assertTrue(message.strip(), f"empty message for key {key!r}")
            for s in substrings:
                self.assertIn(s, message, f"func 0x{func:x} key {key!r}")

    def test_03_keys(self):
        good = new_key()
        self.assert_bad_key("hello", "expected 36")
        self.assert_bad_key("")
        self.assert_bad_key(good[:-1], "expected 36")
        self.assert_bad_key(good + "0", "expected 36")
        self.assert_bad_key("zzzzzzzz-zzzz-4zzz-8zzz-zzzzzzzzzzzz")
        self.assert_bad_key(good.replace("-", "0"))  # 36 hex digits, no dashes
        self.assert_bad_key(good[:14] + "1" + good[15:], "version nibble")
        self.assert_bad_key(good[:19] + "c" + good[20:], "variant")
        self.assert_bad_key(good[:19] + "7" + good[20:], "variant")
        self.assert_bad_key(12345)
        self.assert_bad_key(good.encode())  # a bin, not a str
        upper = new_key().upper()
        self.assertEqual(self.set(upper, "upper"), (OK, None))
        self.assertEqual(call(self.leader, KV_GET, upper.lower()), (OK, "upper"))
        self.assertEqual(call(self.leader, KV_GET, upper), (OK, "upper"))
        stored = {}
        for address in self.cluster.addresses():
            stored.update(scan_all(address))
        self.assertIn(upper.lower(), stored, "uppercase key not stored in lowercase")
        self.assertNotIn(upper, stored)

    def test_04_values(self):
        key = new_key()
        for value in ("a" * MAX_VALUE, b"\x01" * MAX_VALUE, "é" * (MAX_VALUE // 2)):
            self.assertEqual(self.set(key, value), (OK, None), f"{type(value).__name__} of exactly {MAX_VALUE} bytes")
            self.assertEqual(call(self.leader, KV_GET, key), (OK, value))
        for value in ("a" * (MAX_VALUE + 1), b"\x01" * (MAX_VALUE + 1), "é" * (MAX_VALUE // 2) + "a"):
            code, message = self.set(key, value)
            self.assertEqual(code, TOO_LONG, f"{type(value).__name__} of {MAX_VALUE + 1} bytes: {message!r}")
        for value in (42, [1, 2], ["a"], {"a": 1}, 1.5, True):
            code, message = self.set(key, value)
            self.assertEqual(code, BAD_ARGUMENTS, f"value {value!r}: {message!r}")
        self.assertEqual(call(self.leader, KV_GET, key), (OK, "é" * (MAX_VALUE // 2)), "a refused SET changed the value")

    def assert_cluster_answers(self):
        for node in self.cluster.nodes:
            self.assertTrue(node.alive(), f"node {node.address} exited ({node.process.returncode})")
        key = new_key()
        self.assertEqual(self.set(key, "after garbage"), (OK, None))
        self.assertEqual(call(self.leader, KV_GET, key), (OK, "after garbage"))
        for address in self.cluster.addresses():
            self.assertIsNotNone(heartbeat(address), address)

    def send_garbage(self, address, data, wait=1.0):
        """Send, read whatever comes back for up to `wait` s, close."""
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=1) as sock:
            try:
                sock.sendall(data)
                sock.settimeout(wait)
                while sock.recv(65536):
                    pass
            except (socket.timeout, OSError):
                pass

    def test_05_garbage(self):
        rng = random.Random(5)
        for address in (self.leader, self.followers[0]):
            for _ in range(3):
                self.send_garbage(address, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), wait=0.3)
                self.assert_cluster_answers()
            self.send_garbage(address, struct.pack("<III", KV_SET, 0xFFFFFFFF, 1) + b"\x92\xa1x" * 100)
            self.assert_cluster_answers()
            self.send_garbage(address, struct.pack("<III", KV_SET, 0xFFFFFFFF, 1))
            self.assert_cluster_answers()
            for func in (0x00039999, 0x00031999, 0x7FFFFFFF):
                try:
                    code, message = call(address, func)
                except (OSError, ValueError) as error:
                    self.fail(f"func 0x{func:x} on {address}: no reply ({type(error).__name__}: {error}), expected code 1")
                self.assertEqual(code, UNKNOWN_REQUEST, f"func 0x{func:x} on {address}: {message!r}")
                self.assert_cluster_answers()
            for body in (b"\xd9\x24abc", b"\xa5abc", b"\x92\xa4abcd", b"\xc4\x10xx", b"\xdc\x00"):
                try:
                    code, reply = raw_call(address, KV_SET, body)
                except (OSError, ValueError) as error:
                    self.fail(f"truncated {body.hex()} on {address}: no reply ({type(error).__name__}: {error}), expected code 2")
                self.assertEqual(code, BAD_REQUEST, f"truncated {body.hex()} on {address}: {decode(reply) if reply else reply!r}")
                self.assert_cluster_answers()

    def current_epoch(self, key):
        """The epoch of the leader that wrote `key`, from a replica's KV_REPLICA_SCAN."""
        for address in self.cluster.addresses():
            version = scan_all(address).get(key)
            if version:
                return version >> 32
        raise AssertionError(f"{key} is on no replica's scan")

    def test_06_fake_replica_writes(self):
        key = new_key()
        self.assertEqual(self.set(key, "real"), (OK, None))
        epoch = self.current_epoch(key)
        self.assertGreater(epoch, 0)
        self.assertLess(epoch, 999999)
        for address in self.cluster.addresses():
            for bogus, version in ((2 ** 40, 2 ** 64 - 1), (999999, (999999 << 32) | 1)):
                code, message = call(address, KV_REPLICA_WRITE, bogus, [key], [version], [0], [b"fake"])
                self.assertEqual(code, UNKNOWN_EPOCH, f"epoch {bogus} on {address}: {message!r}")
            if epoch >= 2:
                code, message = call(address, KV_REPLICA_WRITE, epoch - 1, [key], [((epoch - 1) << 32) | 1], [0], [b"old"])
                self.assertEqual(code, STALE_EPOCH, f"epoch {epoch - 1} on {address}: {message!r}")
            other = new_key()
            version = (epoch << 32) | 0xFFFFFF00
            for arrays in (([other, new_key()], [version], [0, 0], [b"a", b"b"]),
                           ([other], [version], [0, 1], [b"a"]),
                           ([other], [version], [0], []),
                           ([other], [version, version], [0], [b"a"])):
                code, message = call(address, KV_REPLICA_WRITE, epoch, *arrays)
                self.assertEqual(code, BAD_ARGUMENTS, f"mismatched arrays {[len(a) for a in arrays]} on {address}: {message!r}")
            self.assertNotIn(other, scan_all(address), "a refused replica write was stored")
            # KV_REPLICA_SCAN's page is 1 to 10,000 keys: outside it, a clear refusal.
            for limit in (0, 10_001):
                code, message = call(address, KV_REPLICA_SCAN, "", limit)
                self.assertEqual(code, OUT_OF_RANGE, f"scan limit {limit} on {address}: {message!r}")
                self.assertIn("1...10000", message)
            code, reply = call(address, KV_REPLICA_SCAN, "", 10_000)
            self.assertEqual(code, OK, f"scan limit 10000 on {address}: {reply!r}")
        self.assertEqual(call(self.leader, KV_GET, key), (OK, "real"), "a refused replica write changed the value")
        for address in self.cluster.addresses():
            records = scan_all(address)
            if key in records:
                self.assertEqual(records[key] >> 32, epoch, f"{address} holds {key} at version {records[key]:#x}")
        # The fence was not poisoned: the real leader still writes to every node.
        self.assertEqual(self.set(key, "real 2"), (OK, None))
        self.assertEqual(call(self.leader, KV_GET, key), (OK, "real 2"))
        for _ in range(20):
            k = new_key()
            self.assertEqual(self.set(k, "after"), (OK, None), k)
            self.assertEqual(call(self.leader, KV_GET, k), (OK, "after"))

    def start_rejected(self, name, args):
        data = os.path.join(self.cluster.dir, name)
        process = subprocess.Popen([BINARY, "--listen", "127.0.0.1:0", "--data-dir", data] + args,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        STARTED.append(process)
        try:
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            self.fail(f"{name}: still running after 10 s; stdout {out!r}")
        return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def assert_rf_refusal(self, name, args, wrong):
        status, out, err = self.start_rejected(name, args)
        self.assertEqual(status, 64, f"{name}: exit status {status}; stderr {err!r}")
        self.assertNotIn("listening", out, f"{name} printed a listening line")
        number = lambda n: re.compile(rf"(?<![\d.:]){n}(?![\d.])")  # noqa: E731
        naming = [line for line in err.splitlines() if number(2).search(line) and number(wrong).search(line)]
        self.assertEqual(len(naming), 1, f"{name}: expected one stderr line naming 2 and {wrong}; stderr {err!r}")

    def test_07_replication_factor_mismatch(self):
        self.assert_rf_refusal("rf3-join", ["--join", self.leader, "--replication-factor", "3"], 3)
        self.assert_rf_refusal("rf5-etcd", ["--etcd", self.cluster.etcd.url, "--replication-factor", "5"], 5)
        time.sleep(1.0)
        for address in self.cluster.addresses():
            view = heartbeat(address)
            self.assertIsNone(check_view(view, self.cluster.addresses(), 2),
                              f"after the refused nodes, {address}'s heartbeat is not the 3 nodes")
        key = new_key()
        self.assertEqual(self.set(key, "x"), (OK, None))


    def test_07b_peer_call_limits_are_checked_before_serving(self):
        for name, args, says in (("call-below-value", ["--peer-call-bytes", "1000"], "--peer-call-bytes must be between"),
                                 ("call-over-half-body", ["--max-body", str(1 << 20)], "--peer-call-bytes must be between"),
                                 ("body-too-small", ["--max-body", "10"], "--max-body must be between"),
                                 ("negative-cache", ["--leader-cache=-1"], "--leader-cache must be 0")):
            status, out, err = self.start_rejected(name, ["--join", self.leader] + args)
            self.assertEqual(status, 64, f"{name}: exit status {status}; stderr {err!r}")
            self.assertNotIn("listening", out)
            self.assertIn(says, err, name)


# ----------------------------------------------------------------- 8: replicas unavailable

class ReplicasUnavailableTests(TimedTest):
    @classmethod
    def setUpClass(cls):
        cls.cluster = cls.make_cluster("rf2-kill", extra=["--lease-ttl", "1"])
        cls.leader = cls.cluster.wait_ready()

    def try_keys(self, count=60):
        codes = {}
        for _ in range(count):
            code, message = call(self.leader, KV_SET, new_key(), "v", timeout=3)
            codes.setdefault(code, []).append(message)
        return codes

    def test_08_kill_nodes(self):
        followers = [n for n in self.cluster.nodes if n.address != self.leader]
        dead = followers[0]
        dead.kill()
        time.sleep(1.5)
        view = heartbeat(self.leader)
        self.assertIsNotNone(view)
        alive = {n["address"]: n["alive"] for n in view["nodes"]}
        self.assertEqual(alive, {a: a != dead.address for a in self.cluster.addresses()})
        self.assertEqual(view["warnings"], [], "2 of 3 alive with RF 2 is no shortfall")
        codes = self.try_keys()
        self.assertEqual(set(codes) - {OK, REPLICAS_UNAVAILABLE}, set(),
                         f"codes other than 0 and 0x203: { {hex(c): m[:2] for c, m in codes.items()} }")
        self.assertIn(OK, codes, "no key succeeded")
        self.assertIn(REPLICAS_UNAVAILABLE, codes, "no key was refused")
        for message in codes[REPLICAS_UNAVAILABLE]:
            self.assertIn("needs 2 of 2 replicas, 1 reachable", message)
        followers[1].kill()
        time.sleep(1.5)
        view = heartbeat(self.leader)
        self.assertIsNotNone(view)
        self.assertEqual(view["leader"], self.leader)
        self.assertTrue(any(re.search(r"replication factor 2\b", w) and re.search(r"\b1 live node\b", w)
                            for w in view["warnings"]), f"warnings {view['warnings']!r}")
        codes = self.try_keys(20)
        self.assertEqual(set(codes), {REPLICAS_UNAVAILABLE}, f"{ {hex(c): m[:2] for c, m in codes.items()} }")


class StoppedReplicaTests(TimedTest):
    """A replica that stops answering but is still counted alive (SIGSTOP: its kernel
    still accepts the calls) must cost the writes it owns their acknowledgement: the
    leader answers them outcome-unknown once the call times out, never OK. Keys it
    does not own are still acknowledged. (Mutant that counts a failed replica call as
    an acknowledgement: every SET here is answered OK, and this test fails.)"""

    @classmethod
    def setUpClass(cls):
        cls.cluster = cls.make_cluster("rf2-stopped")
        cls.leader = cls.cluster.wait_ready()

    def test_08b_a_silent_replica_is_no_acknowledgement(self):
        stopped = next(n for n in self.cluster.nodes if n.address != self.leader)
        os.kill(stopped.process.pid, signal.SIGSTOP)
        try:
            # One at a time: a batch is acknowledged as a whole, so concurrent SETs
            # would share the fate of the keys the stopped node owns.
            answers = {}
            for _ in range(20):
                key = new_key()
                answers[key] = call(self.leader, KV_SET, key, "v", timeout=5)
        finally:
            os.kill(stopped.process.pid, signal.SIGCONT)
        codes = {code for code, _ in answers.values()}
        self.assertEqual(codes - {OK, KV_OUTCOME_UNKNOWN, REPLICAS_UNAVAILABLE}, set(), f"answers {answers!r}")
        # With RF 2 of 3 nodes, each key is on the stopped node with probability 2/3.
        self.assertTrue(codes - {OK}, "every SET was acknowledged, though the stopped node owns about 2/3 of the keys")
        self.assertIn(OK, codes, "no SET succeeded, though the stopped node owns only about 2/3 of the keys")
        for key, (code, _) in answers.items():
            if code == OK:
                self.assertEqual(call(self.leader, KV_GET, key, timeout=5), (OK, "v"))


# ----------------------------------------------------------------- 9: SIGTERM of the leader

class ResignationTests(TimedTest):
    @classmethod
    def setUpClass(cls):
        cls.cluster = cls.make_cluster("sigterm")  # default --lease-ttl 2: expiry would take longer than 1 s
        cls.leader = cls.cluster.wait_ready()

    def test_09_sigterm_leader(self):
        old = self.cluster.by_address(self.leader)
        others = [n.address for n in self.cluster.nodes if n is not old]
        old.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            status = old.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.fail("the leader did not exit within 5 s of SIGTERM")
        exited = time.monotonic()
        self.assertEqual(status, 0, "exit status after SIGTERM")
        accepted, seen = None, {}
        while time.monotonic() < exited + 3.0 and accepted is None:
            for address in others:
                try:
                    code, message = call(address, KV_SET, new_key(), "v", timeout=0.5)
                except (OSError, ValueError) as error:
                    code, message = type(error).__name__, str(error)
                seen[code] = message
                if code == OK:
                    accepted = (time.monotonic(), address)
                    break
            time.sleep(0.02)
        self.assertIsNotNone(accepted, f"no node accepted a SET within 3 s of the exit; last answers {seen!r}")
        when, new_leader = accepted
        log(f"test_09: exit {exited - sent:.2f} s after SIGTERM; {new_leader} took a SET {when - exited:.2f} s after the exit")
        self.assertLessEqual(when - exited, 1.0, f"new leader {new_leader} accepted a SET {when - exited:.2f} s after the "
                             f"old one exited ({exited - sent:.2f} s after SIGTERM); answers before: {seen!r}")
        self.assertEqual(self.cluster.leader(timeout=3), new_leader)


# ----------------------------------------------------------------- 10: restart and repair

class RestartTests(TimedTest):
    @classmethod
    def setUpClass(cls):
        cls.cluster = cls.make_cluster("restart", extra=["--lease-ttl", "1"])
        cls.leader = cls.cluster.wait_ready()

    def test_10_restart_same_id_and_reads(self):
        ids = {n["address"]: n["id"] for n in heartbeat(self.leader)["nodes"]}
        victim = next(n for n in self.cluster.nodes if n.address != self.leader)
        before = {}
        for _ in range(20):
            key = new_key()
            self.assertEqual(call(self.leader, KV_SET, key, "before"), (OK, None))
            before[key] = "before"
        on_victim_before = set(scan_all(victim.address)) & set(before)
        self.assertTrue(on_victim_before, "none of 20 keys is on the victim (RF 2 of 3)")
        victim.kill()
        time.sleep(1.5)
        written, refused = {}, 0
        for i in range(40):
            key = new_key()
            code, message = call(self.leader, KV_SET, key, f"down {i}")
            if code == OK:
                written[key] = f"down {i}"
            else:
                self.assertEqual(code, REPLICAS_UNAVAILABLE, message)
                refused += 1
        self.assertTrue(written and refused, f"{len(written)} written, {refused} refused")
        again = self.cluster.restart(victim)
        restarted = time.monotonic()
        deadline = restarted + 10
        while True:
            view = heartbeat(self.leader)
            entry = next((n for n in (view or {}).get("nodes", []) if n["address"] == again.address), None)
            if entry and entry["alive"]:
                break
            self.assertLess(time.monotonic(), deadline, f"restarted node not alive in the leader's heartbeat: {view!r}")
            time.sleep(0.1)
        self.assertEqual(entry["id"], ids[again.address], "the restarted node has a new id")
        self.assertEqual(len(view["nodes"]), 3, view)
        own = heartbeat(again.address)
        self.assertEqual({n["address"]: n["id"] for n in own["nodes"]}, ids)
        # A node serves reads as a replica ~2.5 s after its start: GETs may wait for that, not longer.
        ready = restarted + 6.0
        for key, value in {**before, **written}.items():
            first = None
            while True:
                got = call(self.leader, KV_GET, key)
                if got == (OK, value) or time.monotonic() > ready:
                    break
                first = first or got
                time.sleep(0.1)
            self.assertEqual(got, (OK, value), f"{key} ({'written while down' if key in written else 'before'}); "
                             f"first answer {first!r}")
        self.assertLessEqual(on_victim_before, set(scan_all(again.address)), "keys held before the kill are gone")
        self.assertEqual(self.cluster.wait_writable(), self.leader)


class RepairTests(TimedTest):
    """Test 10's repair half with RF 3 (writes need 2 of 3): the restarted node owns every key, so
    every record written while it was down must reach it. (With RF 2 writes need both replicas,
    so a node that was down owns no record written meanwhile.)"""

    @classmethod
    def setUpClass(cls):
        cls.cluster = cls.make_cluster("repair", rf=3, extra=["--lease-ttl", "1"])
        cls.leader = cls.cluster.wait_ready()

    def test_10b_repair_after_restart(self):
        ids = {n["address"]: n["id"] for n in heartbeat(self.leader)["nodes"]}
        victim = next(n for n in self.cluster.nodes if n.address != self.leader)
        victim.kill()
        time.sleep(1.5)
        written = {}
        self.noted = []
        leader = self.leader
        for i in range(30):
            key = new_key()
            value = f"down {i}" if i % 3 else b"bin %d" % i
            for attempt in range(5):
                got = call(leader, KV_SET, key, value)
                if got[0] not in (KV_OUTCOME_UNKNOWN, NO_LEADER, NOT_LEADER):
                    break
                # Under load a live replica can miss the 0.5 s peer timeout (0x204), or the lease lapse (0x202):
                # not what this test is about; noted, and the SET retried on the current leader.
                self.noted.append(f"SET {i} attempt {attempt + 1} on {leader}: 0x{got[0]:x} {got[1]!r}")
                log(f"test_10b: {self.noted[-1]}; retrying")
                time.sleep(0.3)
                leader = self.cluster.leader(timeout=5)
            self.assertEqual(got, (OK, None), f"RF 3, 2 of 3 alive; earlier answers {self.noted}")
            written[key] = value
        deleted = next(iter(written))
        self.assertEqual(call(leader, KV_DELETE, deleted), (OK, None))
        self.leader = leader
        written[deleted] = None
        again = self.cluster.restart(victim)
        restarted = time.monotonic()
        expected = {}
        for address in self.cluster.addresses():
            if address != again.address:
                for key, version in scan_all(address).items():
                    if key in written:
                        expected[key] = max(expected.get(key, 0), version)
        self.assertEqual(set(expected), set(written))
        missing = None
        while time.monotonic() < restarted + 15:
            try:
                have = scan_all(again.address)
            except (OSError, ValueError):
                have = {}
            missing = {k: v for k, v in expected.items() if have.get(k) != v}
            if not missing:
                break
            time.sleep(0.25)
        self.assertEqual(missing, {}, f"{len(missing)} of {len(expected)} records written while the node was down "
                         f"not on it 15 s after its restart")
        self.assertEqual({n["address"]: n["id"] for n in heartbeat(self.leader)["nodes"]}, ids)
        for key, value in written.items():
            self.assertEqual(call(self.leader, KV_GET, key), (OK, value), key)


# ----------------------------------------------------------------- 11: RF 3 with one node down

class OneDownTests(TimedTest):
    """With RF 3 and one node down every key keeps a write and a read quorum: no request fails."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = cls.make_cluster("rf3-one-down", rf=3)
        cls.leader = cls.cluster.wait_ready()

    def test_11_rf3_one_node_down_nothing_fails(self):
        victim = next(n for n in self.cluster.nodes if n.address != self.leader)
        victim.kill()
        time.sleep(1.5)  # past the liveness timeout: the leader counts it down
        answers = {}
        for i in range(200):
            key = new_key()
            answers[("set", i)] = call(self.leader, KV_SET, key, f"v{i}")
            answers[("get", i)] = (call(self.leader, KV_GET, key), f"v{i}")
        failed = {k: v for k, v in answers.items() if (v[0] if k[0] == "set" else v[0][0]) != OK}
        self.assertEqual(failed, {}, f"{len(failed)} of 400 requests failed with one of three RF 3 nodes down")
        wrong = {k: v for k, v in answers.items() if k[0] == "get" and v[0] != (OK, v[1])}
        self.assertEqual(wrong, {})


# ----------------------------------------------------------------- 12: large values, many at once

class LargeValueTests(TimedTest):
    """Values at --max-value, more at once than one replica call may carry: the leader splits a
    batch into calls of --peer-call-bytes, and repair fetches in answers of that size, so nothing
    reaches a node's --max-body. Scaled down (64 KiB values, 1 MiB bodies) from the defaults'
    1 MiB and 64 MiB, where 96 concurrent SETs were 86 outcome-unknown answers before the split."""

    COUNT = 96
    SIZE = 64 << 10
    timeout_s = 90

    @classmethod
    def setUpClass(cls):
        cls.cluster = cls.make_cluster("large-values", rf=3, extra=[
            "--max-value", str(cls.SIZE), "--peer-call-bytes", str(256 << 10), "--max-body", str(1 << 20)])
        cls.leader = cls.cluster.wait_ready()

    def test_12_concurrent_large_values_and_their_repair(self):
        keys = [new_key() for _ in range(self.COUNT)]
        values = {key: bytes([i % 251]) * self.SIZE for i, key in enumerate(keys)}
        answers = {}
        start = threading.Barrier(self.COUNT)

        def set_one(key):
            start.wait()
            answers[key] = call(self.leader, KV_SET, key, values[key], timeout=30)

        threads = [threading.Thread(target=set_one, args=(key,)) for key in keys]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        failed = {k[:8]: v for k, v in answers.items() if v != (OK, None)}
        self.assertEqual(failed, {}, f"{len(failed)} of {self.COUNT} concurrent {self.SIZE}-byte SETs not acknowledged")
        for key in keys[:: self.COUNT // 8]:
            self.assertEqual(call(self.leader, KV_GET, key, timeout=10), (OK, values[key]))

        # Repair: a replica down while 80 values (5 MiB, five bodies' worth) are written copies them all back.
        victim = next(n for n in self.cluster.nodes if n.address != self.leader)
        victim.kill()
        time.sleep(1.5)
        written = {}
        for i in range(80):
            key = new_key()
            self.assertEqual(call(self.leader, KV_SET, key, bytes([i]) * self.SIZE, timeout=10), (OK, None), f"SET {i}")
            written[key] = True
        again = self.cluster.restart(victim)
        expected = {k: v for k, v in scan_all(self.leader).items() if k in written}
        self.assertEqual(set(expected), set(written), "the leader (a replica of every key at RF 3) lacks writes")
        deadline = time.monotonic() + 40
        missing = set(written)
        while missing and time.monotonic() < deadline:
            try:
                have = scan_all(again.address)
                missing = {k for k, v in expected.items() if have.get(k) != v}
            except (OSError, ValueError, AssertionError):
                pass
            time.sleep(0.5)
        self.assertEqual(len(missing), 0, f"{len(missing)} of 80 large records not repaired onto the restarted node in 40 s")


# ----------------------------------------------------------------- runner

RAN = set()


class Recording(unittest.TextTestResult):
    def startTest(self, test):
        RAN.add(test.id().rsplit(".", 1)[-1])
        super().startTest(test)


def main():
    global BINARY, ROOT
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    BINARY = os.path.join(sys.argv[1], "iproto-kvd")
    if not os.access(BINARY, os.X_OK):
        print(f"kv_behaviour_test: no executable {BINARY}", file=sys.stderr)
        return 2
    ROOT = tempfile.mkdtemp(prefix="kvbehave-")
    keep = os.environ.get("KV_BEHAVE_KEEP") == "1"

    def cleanup():
        kill_everything()
        for path in ETCD_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        if keep:
            print(f"kv_behaviour_test: logs kept in {ROOT}", file=sys.stderr)
        else:
            shutil.rmtree(ROOT, ignore_errors=True)
    atexit.register(cleanup)

    def watchdog():
        print(f"kv_behaviour_test: watchdog: over {WATCHDOG_S} s, stopping", file=sys.stderr, flush=True)
        cleanup()
        os._exit(3)
    timer = threading.Timer(WATCHDOG_S, watchdog)
    timer.daemon = True
    timer.start()
    def stopped(signum, frame):  # unittest would record SystemExit as one test's error and go on
        print(f"kv_behaviour_test: signal {signum}, stopping", file=sys.stderr, flush=True)
        cleanup()
        os._exit(130)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stopped)

    started = time.monotonic()
    program = unittest.main(module=__name__, argv=[sys.argv[0]] + sys.argv[2:], exit=False, verbosity=2, warnings="ignore",
                            testRunner=unittest.TextTestRunner(resultclass=Recording, verbosity=2))
    result = program.result
    ran = RAN
    loader = unittest.TestLoader()
    loader.testNamePatterns = program.testNamePatterns
    failed = []
    for test, _ in result.failures + result.errors:
        if isinstance(test, unittest.TestCase):
            failed.append(test.id().rsplit(".", 1)[-1])
        else:  # a setUpClass/tearDownClass error: every test of that class counts as failed
            match = re.search(r"\(\w+\.(\w+)\)", str(test))
            cls = globals().get(match.group(1)) if match else None
            names = list(loader.getTestCaseNames(cls)) if cls else [str(test)]
            failed.extend(n for n in names if n not in failed)
    total = result.testsRun + sum(1 for n in set(failed) if n not in ran)
    passed = max(0, total - len(set(failed)) - len(result.skipped))
    print(f"kv_behaviour_test: {passed} passed, {len(set(failed))} failed{' (' + ', '.join(failed) + ')' if failed else ''}"
          f" in {time.monotonic() - started:.0f} s", flush=True)
    timer.cancel()
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
