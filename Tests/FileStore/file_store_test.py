#!/usr/bin/env python3
"""End-to-end tests of the file store: iproto-filegw and iproto-volumed as real processes.

    Tests/FileStore/file_store_test.py BIN_DIR [unittest args, e.g. -k test_03]

One cluster (a gateway and 8 nodes on free ports of 127.0.0.1) serves tests 1-12;
tests that kill a node start it again before they end. Temp dirs go under one
filestore-* dir, removed at the end (FILES_TEST_KEEP=1 keeps it and prints its path).
Prints one summary line; exit 0 when every test passed, 1 when one failed.
"""
import hashlib
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import zlib

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from iproto import frame, read_reply  # noqa: E402
from postgres import Postgres  # noqa: E402

VOL_PUT_CHUNK = 0x00040001
VOL_PART_INFO = 0x00040005
VOL_NODE_INFO = 0x00040006
VOL_NOT_FOUND = 0x303

BIN = None
ROOT = None
CLUSTER = None
BLOCK = 5 << 20
MAX_FILE = 256 << 20
# The debug build's peak while a 200 MiB file goes up and down (measured 88-110 MiB): constant memory, not
# the file (whole-file buffering would need the 45 MiB at rest plus 200 MiB). The release build's
# 64 MiB target is measured by make bench-files (docs/benchmarks.md).
RSS_BOUND_KIB = 150 << 10


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Process:
    def __init__(self, args, banner, log):
        self.args, self.banner, self.log = args, banner, log
        self.start()

    def start(self):
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log)
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith(self.banner + " listening on "):
            self.process.kill()
            raise RuntimeError(f"{self.banner} did not start: {line!r}; see {self.log}")
        self.address = line.rsplit(" ", 1)[1]

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.process.stdout.close()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=15)
        self.process.stdout.close()


def start_gateway(root, name, *extra):
    return Process([os.path.join(BIN, "iproto-filegw"), "--listen", "127.0.0.1:0", "--data-dir", os.path.join(root, name),
                    "--max-file-size", str(MAX_FILE), "--idle-timeout", "2", "--probe-interval", "0.2",
                    "--liveness-timeout", "1", "--transfer-memory", "48M", *extra], "iproto-filegw", os.path.join(root, name + ".log"))


class Cluster:
    def __init__(self, nodes=8, gateway_args=(), name="main", capacity="20G"):
        self.capacity = capacity
        self.root = os.path.join(ROOT, name)
        os.makedirs(self.root)
        self.gateway = start_gateway(self.root, "gateway", *gateway_args)
        self.nodes = []
        for _ in range(nodes):
            self.add_node()
        wait_for(lambda: len([n for n in self.node_list() if n["alive"]]) == nodes, 20, f"{nodes} live nodes")

    def add_node(self):
        n = len(self.nodes)
        node = Process([os.path.join(BIN, "iproto-volumed"), "--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.root, f"node{n}"),
                        "--capacity", self.capacity, "--gateway", f"http://{self.gateway.address}", "--registration-interval", "0.5"],
                       "iproto-volumed", os.path.join(self.root, f"node{n}.log"))
        self.nodes.append(node)
        return node

    def request(self, method, path, body=None, headers=None, timeout=60):
        host, port = self.gateway.address.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            chunked = (headers or {}).get("Transfer-Encoding") == "chunked"
            connection.request(method, path, body=body, headers={k: v for k, v in (headers or {}).items()
                                                                   if not chunked or k != "Transfer-Encoding"},
                               encode_chunked=chunked)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def put(self, name, data, headers=None):
        status, headers, body = self.request("PUT", "/files/" + urllib.parse.quote(name, safe="/"), data, headers)
        return status, headers, json.loads(body) if body else None

    def get(self, name, headers=None):
        return self.request("GET", "/files/" + urllib.parse.quote(name, safe="/"), headers=headers)

    def node_list(self):
        try:
            status, _, body = self.request("GET", "/nodes", timeout=5)
        except OSError:
            return []
        return json.loads(body) if status == 200 else []

    def layout(self, name):
        status, _, body = self.request("GET", "/files/" + urllib.parse.quote(name, safe="/") + "?layout")
        assert status == 200, (status, body)
        return json.loads(body)

    def node_process(self, address):
        return next(node for node in self.nodes if node.address == address)

    def metric(self, name):
        _, _, body = self.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def raw(self, data, read=True, timeout=10):
        """Bytes sent on a raw socket, and what the gateway answered (for requests http.client will not send)."""
        host, port = self.gateway.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(data)
            if not read:
                return b""
            reply = b""
            try:
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
                    if b"\r\n\r\n" in reply:
                        head, _, rest = reply.partition(b"\r\n\r\n")
                        length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                        if length and len(rest) >= length[0]:
                            break
            except socket.timeout:
                pass
            return reply

    def stop(self):
        for process in self.nodes + [self.gateway]:
            process.kill()


def part_info(address, part_id):
    """A node's VOL_PART_INFO reply code for a part."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(frame(VOL_PART_INFO, 1, msgpack.packb(part_id)))
        return read_reply(sock)[2]


def parts_held(address):
    """The number of parts a node holds now, asked directly (GET /nodes has it as of the last probe)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(frame(VOL_NODE_INFO, 1, b""))
        return msgpack.unpackb(read_reply(sock)[3], raw=False)[3]


def put_chunk(address, part_id, chunk, data):
    """Writes a chunk straight onto a node, past the gateway; returns the reply code."""
    host, port = address.rsplit(":", 1)
    body = b"".join(msgpack.packb(value, use_bin_type=True) for value in (part_id, chunk, zlib.crc32(data), data))
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(frame(VOL_PUT_CHUNK, 1, body))
        return read_reply(sock)[2]


def status_of(reply):
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None


class FileStoreTest(unittest.TestCase):
    def test_01_sizes_around_every_boundary_come_back_byte_identical(self):
        sizes = [0, 1, 4, 5, 6, 24, 26, 1000, BLOCK - 1, BLOCK, BLOCK + 1, 1 << 20, 2 * BLOCK + 3, 100 << 20]
        for size in sizes:
            data = os.urandom(size)
            status, headers, body = CLUSTER.put(f"sizes/{size}", data)
            self.assertEqual(status, 201, (size, body))
            self.assertEqual(body["size"], size)
            self.assertEqual(headers["ETag"], body["etag"])
            status, headers, got = CLUSTER.get(f"sizes/{size}")
            self.assertEqual(status, 200)
            self.assertEqual(int(headers["Content-Length"]), size)
            self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest(), f"size {size}")
            layout = CLUSTER.layout(f"sizes/{size}")
            lengths = [p["length"] for p in layout["parts"] if p["kind"] == "data"]
            self.assertEqual(sum(lengths), size)
            self.assertLessEqual(max(lengths) - min(lengths), 1, f"size {size}: {lengths}")
            self.assertEqual(len({p["node"] for p in layout["parts"]}), 6, "6 distinct nodes")

    def test_02_range_reads_at_the_edges(self):
        data = os.urandom(2 * BLOCK + 777)
        self.assertEqual(CLUSTER.put("ranges", data)[0], 201)
        size = len(data)
        for header, start, end in [("bytes=0-0", 0, 0), (f"bytes={size - 1}-", size - 1, size - 1), ("bytes=-10", size - 10, size - 1),
                                   (f"bytes={BLOCK - 2}-{BLOCK + 1}", BLOCK - 2, BLOCK + 1), (f"bytes=100-{size + 1000}", 100, size - 1),
                                   (f"bytes={BLOCK}-{2 * BLOCK - 1}", BLOCK, 2 * BLOCK - 1)]:
            status, headers, body = CLUSTER.get("ranges", {"Range": header})
            self.assertEqual(status, 206, header)
            self.assertEqual(headers["Content-Range"], f"bytes {start}-{end}/{size}")
            self.assertEqual(body, data[start:end + 1], header)
        status, headers, _ = CLUSTER.get("ranges", {"Range": f"bytes={size}-"})
        self.assertEqual(status, 416)
        self.assertEqual(headers["Content-Range"], f"bytes */{size}")
        status, _, body = CLUSTER.get("ranges", {"Range": "bytes=0-1,5-6"})
        self.assertEqual((status, body), (200, data), "several ranges: the whole file")
        status, headers, body = CLUSTER.request("HEAD", "/files/ranges")
        self.assertEqual((status, body, int(headers["Content-Length"]), headers["Accept-Ranges"]), (200, b"", size, "bytes"))
        status, _, _ = CLUSTER.get("ranges", {"If-None-Match": headers["ETag"]})
        self.assertEqual(status, 304)

    def test_03_overwrite_replaces_atomically_and_delete_reclaims(self):
        reclaimed = CLUSTER.metric("iproto_files_parts_reclaimed_total")
        self.assertEqual(CLUSTER.put("over", b"first version")[0], 201)
        first = CLUSTER.layout("over")
        status, _, body = CLUSTER.put("over", b"second")
        self.assertEqual((status, body["size"]), (200, 6))
        self.assertEqual(CLUSTER.get("over")[2], b"second")
        self.assertNotEqual(CLUSTER.layout("over")["etag"], first["etag"])
        self.assertEqual(CLUSTER.request("DELETE", "/files/over")[0], 204)
        self.assertEqual(CLUSTER.get("over")[0], 404)
        self.assertEqual(CLUSTER.request("DELETE", "/files/over")[0], 404)
        # The first version's 6 parts and the deleted file's 6 are deleted on their nodes.
        wait_for(lambda: CLUSTER.metric("iproto_files_parts_reclaimed_total") >= reclaimed + 12 and
                 CLUSTER.metric("iproto_files_garbage_parts") == 0, 15, "the 12 parts reclaimed")
        for part in first["parts"]:
            self.assertEqual(part_info(part["address"], part["part_id"]), VOL_NOT_FOUND, part)

    def test_04_listing_by_prefix(self):
        for name in ["list/a", "list/b/c", "list/b/d", "listing"]:
            self.assertEqual(CLUSTER.put(name, name.encode())[0], 201)
        status, _, body = CLUSTER.request("GET", "/files?prefix=list/")
        self.assertEqual(status, 200)
        self.assertEqual([f["name"] for f in json.loads(body)], ["list/a", "list/b/c", "list/b/d"])
        status, _, body = CLUSTER.request("GET", "/files?prefix=list/b/&limit=1")
        self.assertEqual([f["name"] for f in json.loads(body)], ["list/b/c"])
        status, _, body = CLUSTER.request("GET", "/files?prefix=list/&after=list/b/c")
        self.assertEqual([f["name"] for f in json.loads(body)], ["list/b/d"])
        self.assertEqual(CLUSTER.request("GET", "/files?limit=0")[0], 400)
        # Names with their own %-escapes list by their own bytes (escaped once in the query).
        self.assertEqual(CLUSTER.put("pct%41/x", b"x")[0], 201)
        status, _, body = CLUSTER.request("GET", "/files?prefix=" + urllib.parse.quote("pct%41/", safe=""))
        self.assertEqual([f["name"] for f in json.loads(body)], ["pct%41/x"])
        status, _, body = CLUSTER.request("GET", "/files?prefix=pctA")
        self.assertEqual(json.loads(body), [])

    def test_05_fifty_concurrent_uploads_and_downloads(self):
        random.seed(5)
        files = {f"concurrent/{n}": os.urandom(random.randint(0, 3 << 20)) for n in range(50)}
        errors = []

        def put(name):
            try:
                status, _, _ = CLUSTER.put(name, files[name])
                if status != 201:
                    errors.append((name, status))
            except Exception as error:  # noqa: BLE001
                errors.append((name, repr(error)))

        def get(name):
            try:
                status, _, body = CLUSTER.get(name)
                if status != 200 or body != files[name]:
                    errors.append((name, "GET", status, len(body)))
            except Exception as error:  # noqa: BLE001
                errors.append((name, repr(error)))

        for action in (put, get):
            threads = [threading.Thread(target=action, args=(name,)) for name in files]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            self.assertEqual(errors, [])
        reserved = sum(n["reserved_bytes"] for n in CLUSTER.node_list())
        self.assertEqual(reserved, 0, "every reservation released")
        self.assertGreater(CLUSTER.metric("iproto_files_transfer_waits_total"), 0, "50 transfers at once hit --transfer-memory 48M")
        wait_for(lambda: CLUSTER.metric("iproto_files_transfer_memory_bytes") == 0, 5, "the budget given back")

    def test_06_a_node_killed_during_a_get_costs_nothing(self):
        data = os.urandom(6 * BLOCK + 5)
        self.assertEqual(CLUSTER.put("get-kill", data)[0], 201)
        victim = CLUSTER.node_process(CLUSTER.layout("get-kill")["parts"][2]["address"])
        host, port = CLUSTER.gateway.address.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/files/get-kill")
        response = connection.getresponse()
        first = response.read(BLOCK)
        victim.kill()
        rest = response.read()
        connection.close()
        self.assertEqual(first + rest, data, "byte-identical though a data part's node died mid-GET")
        degraded = CLUSTER.metric("iproto_files_degraded_reads_total")
        self.assertGreater(degraded, 0)
        status, _, body = CLUSTER.get("get-kill")
        self.assertEqual((status, body), (200, data), "and after")
        victim.start()
        wait_for(lambda: all(n["alive"] for n in CLUSTER.node_list()), 10, "the node back")

    def test_07_a_node_killed_during_a_put_leaves_nothing_visible(self):
        self.assertEqual(CLUSTER.put("put-kill", b"old")[0], 201)
        wait_for(lambda: CLUSTER.metric("iproto_files_garbage_parts") == 0, 15, "no garbage left from earlier tests")
        reclaimed = CLUSTER.metric("iproto_files_parts_reclaimed_total")
        size = 40 << 20
        host, port = CLUSTER.gateway.address.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(f"PUT /files/put-kill HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
        sock.sendall(os.urandom(12 << 20))
        # The nodes chosen for the upload hold its reservations.
        chosen = wait_for(lambda: [n for n in CLUSTER.node_list() if n["reserved_bytes"] > 0], 10, "reservations")
        victim = CLUSTER.node_process(chosen[0]["address"])
        victim.kill()
        try:
            sock.sendall(os.urandom(size - (12 << 20)))
        except OSError:
            pass
        reply = b""
        try:
            while b"\r\n\r\n" not in reply:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            pass
        sock.close()
        self.assertIn(status_of(reply), (503, None), reply[:200])
        self.assertEqual(CLUSTER.get("put-kill")[2], b"old", "the old version stays; nothing half-visible")
        victim.start()
        wait_for(lambda: all(n["alive"] for n in CLUSTER.node_list()), 10, "the node back")
        wait_for(lambda: sum(n["reserved_bytes"] for n in CLUSTER.node_list()) == 0, 10, "reservations released")
        wait_for(lambda: CLUSTER.metric("iproto_files_parts_reclaimed_total") >= reclaimed + 6 and
                 CLUSTER.metric("iproto_files_garbage_parts") == 0, 15, "the cut-off upload's 6 parts reclaimed")

    def test_08_bad_names_are_400(self):
        for path in ["/files/", "/files/a/../b", "/files/../etc/passwd", "/files/a/./b", "/files/a//b", "/files/a/", "/files//a",
                     "/files/%2e%2e/x", "/files/a%00b", "/files/%ff", "/files/%zz", "/files/" + "n" * 1025]:
            reply = CLUSTER.raw(f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx".encode())
            self.assertEqual(status_of(reply), 400, (path, reply[:300]))
            self.assertIn(b'"error"', reply)
        self.assertEqual(CLUSTER.put("n" * 1024, b"x")[0], 201, "1,024 bytes is allowed")
        self.assertEqual(CLUSTER.put("dir/ünïcode файл.txt", b"x")[0], 201)
        self.assertEqual(CLUSTER.get("dir/ünïcode файл.txt")[2], b"x")

    def test_09_bodies_that_lie_about_their_length_and_clients_that_stop(self):
        before = CLUSTER.metric("iproto_files_upload_failures_total")
        # Shorter than its Content-Length, then closed.
        CLUSTER.raw(b"PUT /files/short HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500, read=False)
        # Stops sending: the idle timeout (2 s here) cuts it off, and counts it; so is a connection left idle.
        closes = CLUSTER.metric("iproto_files_idle_closes_total")
        started = time.time()
        reply = CLUSTER.raw(b"PUT /files/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10, timeout=15)
        self.assertLess(time.time() - started, 10, "cut off by the idle timeout")
        self.assertGreaterEqual(time.time() - started, 1.9, "not before it")
        started = time.time()
        self.assertEqual(CLUSTER.raw(b"", timeout=15), b"", "an idle connection is closed")
        self.assertLess(time.time() - started, 10)
        self.assertEqual(CLUSTER.metric("iproto_files_idle_closes_total") - closes, 2)
        # Longer: the file is Content-Length bytes; the rest is a malformed next request.
        reply = CLUSTER.raw(b"PUT /files/long HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcdefgh")
        self.assertEqual(status_of(reply), 201, reply[:200])
        self.assertEqual(CLUSTER.get("long")[2], b"abc")
        for name in ("short", "stalled"):
            self.assertEqual(CLUSTER.get(name)[0], 404, name)
        wait_for(lambda: CLUSTER.metric("iproto_files_upload_failures_total") >= before + 2, 10, "both counted as failed uploads")
        wait_for(lambda: sum(n["reserved_bytes"] for n in CLUSTER.node_list()) == 0, 10, "reservations released")

    def test_10_files_past_the_size_limit_are_413(self):
        refused = CLUSTER.metric("iproto_files_too_large_total")
        reply = CLUSTER.raw(f"PUT /files/huge HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_FILE + 1}\r\n\r\n".encode())
        self.assertEqual(status_of(reply), 413, reply[:200])
        self.assertIn(b"--max-file-size", reply)
        # Chunked, so the size shows only as it streams.
        chunk = os.urandom(1 << 20)

        def body():
            for _ in range((MAX_FILE >> 20) + 2):
                yield chunk

        try:
            status, _, body_text = CLUSTER.request("PUT", "/files/huge", body(), {"Transfer-Encoding": "chunked"})
            self.assertEqual(status, 413, body_text)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway answered and closed before the client finished sending
        self.assertEqual(CLUSTER.get("huge")[0], 404)
        self.assertEqual(CLUSTER.metric("iproto_files_too_large_total"), refused + 2, "both refusals counted")
        status, _, body = CLUSTER.request("PUT", "/files/chunked", iter([b"ab", b"cd" * 1000]), {"Transfer-Encoding": "chunked"})
        self.assertEqual(status, 201, body)
        self.assertEqual(CLUSTER.get("chunked")[2], b"ab" + b"cd" * 1000)

    def test_11_unknown_nodes_and_garbage_on_a_node_port(self):
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
        free.close()
        status, _, body = CLUSTER.request("POST", "/nodes", json.dumps({"address": f"127.0.0.1:{port}"}))
        self.assertEqual(status, 502, body)
        self.assertEqual(CLUSTER.request("POST", "/nodes", b"not json")[0], 400)
        self.assertEqual(CLUSTER.request("POST", "/nodes", json.dumps({"address": "nonsense"}))[0], 400)
        node = CLUSTER.nodes[0]
        host, port = node.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(os.urandom(100_000))
        self.assertEqual(CLUSTER.put("after-garbage", b"fine")[0], 201)
        self.assertEqual(CLUSTER.get("after-garbage")[2], b"fine")
        self.assertTrue(all(n["alive"] for n in CLUSTER.node_list()))

    def test_12_a_node_added_mid_run_takes_parts_of_every_new_file(self):
        node = CLUSTER.add_node()
        wait_for(lambda: any(n["address"] == node.address and n["alive"] for n in CLUSTER.node_list()), 10, "the new node")
        for n in range(5):
            self.assertEqual(CLUSTER.put(f"after-join/{n}", os.urandom(100_000))[0], 201)
            addresses = [p["address"] for p in CLUSTER.layout(f"after-join/{n}")["parts"]]
            self.assertIn(node.address, addresses, "the emptiest node is in every new file")

    def test_13_memory_stays_bounded_while_a_large_file_goes_up_and_down(self):
        size = 200 << 20  # past the 64 MiB bound several times over
        data = os.urandom(1 << 20)
        # The peak since now (Linux: writing 5 to clear_refs resets VmHWM), not since the gateway started.
        with open(f"/proc/{CLUSTER.gateway.process.pid}/clear_refs", "w") as clear:
            clear.write("5")

        def body():
            for _ in range(size >> 20):
                yield data

        status, _, reply = CLUSTER.request("PUT", "/files/large", body(), {"Content-Length": str(size)}, timeout=300)
        self.assertEqual(status, 201, reply)
        host, port = CLUSTER.gateway.address.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=300)
        connection.request("GET", "/files/large")
        response = connection.getresponse()
        for n in range(size >> 20):
            self.assertEqual(response.read(1 << 20), data, f"MiB {n}")
        connection.close()
        with open(f"/proc/{CLUSTER.gateway.process.pid}/status") as status_file:
            peak = int(next(l for l in status_file if l.startswith("VmHWM:")).split()[1])
        print(f"\ngateway peak RSS after a {size >> 20} MiB file went up and down: {peak >> 10} MiB", file=sys.stderr)
        self.assertLess(peak, RSS_BOUND_KIB, f"peak RSS {peak} KiB")

    def test_14_the_gateway_restarts_with_its_files(self):
        data = os.urandom(BLOCK + 9)
        self.assertEqual(CLUSTER.put("survives", data)[0], 201)
        CLUSTER.gateway.kill()
        CLUSTER.gateway.start()
        wait_for(lambda: len([n for n in CLUSTER.node_list() if n["alive"]]) == len(CLUSTER.nodes), 20, "the nodes known again")
        self.assertEqual(CLUSTER.get("survives")[2], data)

    def test_16_expect_100_continue_is_answered_before_the_body(self):
        host, port = CLUSTER.gateway.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"PUT /files/continued HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            sock.settimeout(0.5)  # curl waits 1 s for it before sending anyway
            self.assertTrue(sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n"))
            sock.settimeout(5)
            sock.sendall(b"hello")
            self.assertEqual(status_of(sock.recv(4096)), 201)
        self.assertEqual(CLUSTER.get("continued")[2], b"hello")

    def test_17_the_orphan_sweep_deletes_parts_the_metadata_does_not_know_there(self):
        data = os.urandom(300_000)
        self.assertEqual(CLUSTER.put("orphans/kept", data)[0], 201)
        parts = CLUSTER.layout("orphans/kept")["parts"]
        first, second = parts[0], parts[1]
        # Orphans as a restored older metadata would leave them: a part no row names, and a
        # recorded part's id on a node its row does not name (two parts of a file never share a node).
        unknown = (1 << 50) + random.randrange(1 << 20)
        self.assertEqual(put_chunk(first["address"], unknown, 0, b"orphaned"), 0)
        self.assertEqual(put_chunk(first["address"], second["part_id"], 0, b"misplaced"), 0)
        before = CLUSTER.metric("iproto_files_orphans_reclaimed_total")
        status, _, body = CLUSTER.request("POST", "/admin/orphans")
        self.assertEqual(status, 200, body)
        sweep = json.loads(body)
        self.assertEqual(sweep["failed_nodes"], [])
        self.assertEqual(sweep["nodes"], len([n for n in CLUSTER.node_list() if n["alive"]]))
        self.assertGreaterEqual(sweep["parts_listed"], len(parts))
        self.assertGreaterEqual(sweep["orphans_deleted"], 2, sweep)
        self.assertEqual(CLUSTER.metric("iproto_files_orphans_reclaimed_total") - before, sweep["orphans_deleted"])
        self.assertEqual(part_info(first["address"], unknown), VOL_NOT_FOUND)
        # Every recorded part is where its row says, intact.
        for part in parts:
            self.assertEqual(part_info(part["address"], part["part_id"]), 0, part)
        self.assertEqual(CLUSTER.get("orphans/kept")[2], data)
        again = json.loads(CLUSTER.request("POST", "/admin/orphans")[2])
        self.assertEqual(again["orphans_deleted"], 0, "nothing the metadata knows is ever swept")
        self.assertEqual(CLUSTER.request("GET", "/admin/orphans")[0], 405)

    def test_18_uploads_the_gateway_holds_back_are_not_idle_and_small_ones_are_not_held(self):
        # Through a 1 MiB --transfer-memory every block of every upload waits its turn: 16 uploads of
        # 4 blocks wait far past the 2 s idle timeout for it, with their clients ready to send all along.
        cluster = Cluster(nodes=6, name="held-back", gateway_args=("--transfer-memory", "1M"))
        try:
            files = {f"held/{n}": os.urandom(3 * BLOCK + 1 + n) for n in range(16)}
            results = {}

            def put(name):
                try:
                    results[name] = cluster.put(name, files[name])[0]
                except OSError as error:
                    results[name] = repr(error)

            started = time.time()
            threads = [threading.Thread(target=put, args=(name,)) for name in files]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
            took = time.time() - started
            self.assertEqual(results, {name: 201 for name in files})
            self.assertGreater(took, 3, "the uploads did wait for each other past the idle timeout")
            self.assertEqual(cluster.metric("iproto_files_idle_closes_total"), 0)
            self.assertGreater(cluster.metric("iproto_files_transfer_waits_total"), 0)
            for name, data in files.items():
                self.assertEqual(cluster.get(name)[2], data, name)

            # A small file's block is charged its own size: 16 downloads and 16 uploads of 1 KiB at
            # once fit in the 1 MiB together and none waits (charged a full 5 MiB block, all but one would).
            small = {f"held/small/{n}": os.urandom(1024 + n) for n in range(16)}
            for name, data in small.items():
                self.assertEqual(cluster.put(name, data)[0], 201)
            waits = cluster.metric("iproto_files_transfer_waits_total")
            got = {}
            transfers = [threading.Thread(target=lambda n=name: got.__setitem__(n, cluster.get(n)[2])) for name in small]
            transfers += [threading.Thread(target=lambda n=name: cluster.put(n + "/again", small[n])) for name in small]
            for thread in transfers:
                thread.start()
            for thread in transfers:
                thread.join(60)
            self.assertEqual(got, small)
            self.assertEqual(cluster.metric("iproto_files_transfer_waits_total"), waits)
        finally:
            cluster.stop()

    def test_19_the_last_block_seals_after_the_rest_and_uneven_shards_rebuild(self):
        # The last block's chunks seal their parts; a node refuses the seal of a part whose
        # earlier chunks it does not hold yet, so the gateway sends it once they are stored.
        # With 4 blocks in flight the earlier ones are still on their way when the body ends.
        cluster = Cluster(nodes=6, name="in-flight", gateway_args=("--blocks-in-flight", "4"))
        try:
            for round in range(3):
                for size in (BLOCK + 1, 2 * BLOCK - 1, 3 * BLOCK, 4 * BLOCK + 7, 12 * BLOCK + 1):
                    data = os.urandom(size)
                    status, _, body = cluster.put(f"in-flight/{round}/{size}", data)
                    self.assertEqual(status, 201, (size, body))
                    self.assertEqual(cluster.get(f"in-flight/{round}/{size}")[2], data, size)

            # A short last block's shards differ by a byte and are coded without padding (the
            # shorter ones as if zero-padded): with a node down every file below, whichever of
            # its parts that node held, comes back from parity byte for byte. Sent with a
            # Content-Length (cut as it arrives) and chunked (cut again once complete).
            sizes = (7, 1003, 1 << 20, BLOCK + 8, 2 * BLOCK + 4, 3 * BLOCK + 1)
            files = {}
            for size in sizes:
                files[f"uneven/{size}"] = os.urandom(size)
                self.assertEqual(cluster.put(f"uneven/{size}", files[f"uneven/{size}"])[0], 201)
                files[f"uneven/{size}/chunked"] = os.urandom(size)
                body = files[f"uneven/{size}/chunked"]
                status, _, _ = cluster.request("PUT", f"/files/uneven/{size}/chunked", iter([body[:3], body[3:]]),
                                               {"Transfer-Encoding": "chunked"})
                self.assertEqual(status, 201)
            degraded = cluster.metric("iproto_files_degraded_reads_total")
            victim = cluster.node_process(cluster.layout("uneven/7")["parts"][0]["address"])
            victim.kill()
            for name, data in files.items():
                self.assertEqual(cluster.get(name)[2], data, name)
            self.assertGreaterEqual(cluster.metric("iproto_files_degraded_reads_total") - degraded, len(files))
        finally:
            cluster.stop()

    def test_15_the_cli_puts_gets_lists_and_removes(self):
        cli = [os.path.join(BIN, "iproto"), "files"]
        gateway = ["--gateway", f"http://{CLUSTER.gateway.address}"]
        source = os.path.join(ROOT, "cli-source")
        with open(source, "wb") as f:
            f.write(os.urandom(BLOCK + 17))
        run = subprocess.run(cli + ["put", *gateway, source, "cli/one"], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(json.loads(run.stdout)["size"], BLOCK + 17)
        target = os.path.join(ROOT, "cli-target")
        run = subprocess.run(cli + ["get", *gateway, "cli/one", target], capture_output=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        with open(source, "rb") as a, open(target, "rb") as b:
            self.assertEqual(a.read(), b.read())
        run = subprocess.run(cli + ["put", *gateway, "-", "cli/two"], input=b"from stdin", capture_output=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        run = subprocess.run(cli + ["ls", *gateway, "cli/"], capture_output=True, text=True, timeout=60)
        self.assertEqual([line.split()[-1] for line in run.stdout.splitlines()], ["cli/one", "cli/two"])
        run = subprocess.run(cli + ["get", *gateway, "cli/none"], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 1)
        self.assertIn("404 no file named cli/none", run.stderr)
        self.assertEqual(subprocess.run(cli + ["rm", *gateway, "cli/two"], timeout=60).returncode, 0)
        self.assertEqual(subprocess.run(cli + ["rm", *gateway, "cli/two"], capture_output=True, timeout=60).returncode, 1)
        self.assertEqual(subprocess.run(cli + ["nodes", "--gateway", "ftp://x"], capture_output=True, timeout=60).returncode, 64)
        run = subprocess.run(cli + ["orphans", *gateway], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(json.loads(run.stdout)["nodes"], len([n for n in CLUSTER.node_list() if n["alive"]]))


def png_pixels(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB or RGBA PNG, as Chromium writes them."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, width = 8, b"", None
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big"), body[8], body[9]
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, channels)])
        previous = line
    return width, height, rows


class StatusPageTest(unittest.TestCase):
    """The status page in headless Chromium: its DOM and a screenshot."""

    def test_the_page_shows_each_nodes_fill_and_the_files(self):
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "chromium is installed by scripts/install-deps.sh test")
        cluster = Cluster(nodes=6, name="page", capacity="64M")
        try:
            for n in range(3):
                self.assertEqual(cluster.put(f"page/file-{n}", os.urandom((n + 1) * 4_000_000))[0], 201)
            victim = cluster.nodes[5]
            victim.kill()
            wait_for(lambda: not next(n for n in cluster.node_list() if n["address"] == victim.address)["alive"], 10, "a node down")
            nodes = cluster.node_list()
            url = f"http://{cluster.gateway.address}/"
            browser = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,900"]
            dom = subprocess.run(browser + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
            rows = re.findall(r'<tr class="node" data-id="([^"]+)" data-fill="([^"]+)">(.*?)</tr>', dom, re.S)
            self.assertEqual(len(rows), 6, dom[:2000])
            for node_id, fill, cells in rows:
                node = next(n for n in nodes if n["id"] == node_id)
                self.assertAlmostEqual(float(fill), node["fill"], places=6)
                width = float(re.search(r'style="width: ([0-9.]+)%"', cells).group(1))
                self.assertAlmostEqual(width, node["fill"] * 100, delta=0.1)
                self.assertIn(node["address"], cells)
                self.assertIn(">down<" if not node["alive"] else ">up<", cells)
            self.assertEqual(re.findall(r'<tr class="file"><td>([^<]+)</td>', dom), ["page/file-0", "page/file-1", "page/file-2"])
            shot = os.path.join(cluster.root, "status.png")
            subprocess.run(browser + [f"--screenshot={shot}", url], capture_output=True, timeout=120)
            width, height, pixels = png_pixels(shot)
            self.assertEqual((width, height), (1200, 900))
            bar = sum(1 for row in pixels for pixel in row if pixel == (0x3A, 0x7B, 0xD5))
            down = sum(1 for row in pixels for pixel in row if pixel[0] > 150 and pixel[1] < 40 and pixel[2] < 40)
            # Each live node's bar is about fill x 300 px wide and 14 px high.
            expected = sum(n["fill"] * 300 * 14 for n in nodes)
            self.assertGreater(bar, expected * 0.7, f"{bar} bar pixels, about {expected:.0f} expected")
            self.assertLess(bar, expected * 1.3 + 200)
            self.assertGreater(down, 20, "the dead node's state is shown in red")
        finally:
            cluster.stop()


class PostgresMetadataTest(unittest.TestCase):
    """Two gateways sharing one PostgreSQL metadata store (--metadata postgres://...)."""

    def test_two_gateways_share_files_and_nodes(self):
        with Postgres(os.path.join(ROOT, "pg")) as pg:
            url = pg.create_database("files")
            first = Cluster(nodes=6, name="pg-a", gateway_args=("--metadata", url))
            second = start_gateway(first.root, "gateway-b", "--metadata", url)
            try:
                other = Cluster.__new__(Cluster)
                other.gateway, other.nodes = second, []
                # Nodes register at the first gateway; the second learns them from the metadata.
                wait_for(lambda: len([n for n in other.node_list() if n["alive"]]) == 6, 20, "the second gateway to see 6 nodes")
                data = os.urandom(2 * BLOCK + 11)
                status, _, body = first.put("shared/a", data)
                self.assertEqual(status, 201, body)
                self.assertEqual(other.get("shared/a")[2], data, "written through one gateway, read through the other")
                self.assertEqual(other.put("shared/a", b"replaced")[0], 200)
                self.assertEqual(first.get("shared/a")[2], b"replaced")
                listing = json.loads(first.request("GET", "/files?prefix=shared/")[2])
                self.assertIsInstance(listing, list, listing)
                names = [f["name"] for f in listing]
                self.assertEqual(names, ["shared/a"])
                self.assertEqual(first.put("shared/ünï", b"x")[0], 201)
                self.assertEqual(other.get("shared/ünï")[2], b"x")
                self.assertEqual(other.request("DELETE", "/files/shared/a")[0], 204)
                self.assertEqual(first.get("shared/a")[0], 404)
                wait_for(lambda: first.metric("iproto_files_garbage_parts") == 0 and other.metric("iproto_files_garbage_parts") == 0
                         and first.metric("iproto_files_parts_reclaimed_total") + other.metric("iproto_files_parts_reclaimed_total") >= 12,
                         20, "the replaced and deleted parts reclaimed")
                # The orphan sweep through either gateway deletes what neither records...
                orphan, holder = (1 << 50) + 7, first.layout("shared/ünï")["parts"][0]["address"]
                self.assertEqual(put_chunk(holder, orphan, 0, b"orphaned"), 0)
                sweep = json.loads(other.request("POST", "/admin/orphans")[2])
                self.assertEqual((sweep["orphans_deleted"], sweep["failed_nodes"]), (1, []), sweep)
                self.assertEqual(part_info(holder, orphan), VOL_NOT_FOUND)
                # A restart of one keeps everything and does not abandon the other's upload in flight.
                host, port = second.address.rsplit(":", 1)
                upload = socket.create_connection((host, int(port)), timeout=30)
                body = os.urandom(BLOCK + 5)
                held = lambda: sum(parts_held(node.address) for node in first.nodes)  # noqa: E731
                parts_before = held()
                upload.sendall(f"PUT /files/shared/in-flight HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode())
                upload.sendall(body[:BLOCK + 1])
                wait_for(lambda: held() >= parts_before + 6, 10, "the upload's first block on its nodes")
                # ...and spares the parts of an upload in flight through the other.
                sweep = json.loads(first.request("POST", "/admin/orphans")[2])
                self.assertEqual((sweep["orphans_deleted"], sweep["failed_nodes"]), (0, []), sweep)
                first.gateway.kill()
                first.gateway.start()
                self.assertEqual(first.get("shared/ünï")[2], b"x")
                upload.sendall(body[BLOCK + 1:])
                reply = upload.recv(65536)
                upload.close()
                self.assertEqual(status_of(reply), 201, reply[:300])
                self.assertEqual(first.get("shared/in-flight")[2], body)
            finally:
                second.kill()
                first.stop()


def spread(nodes):
    fills = [n["live_bytes"] / n["capacity_bytes"] for n in nodes if n["alive"]]
    return max(fills) / min(fills) if min(fills) > 0 else math.inf


class MovingPartsTest(unittest.TestCase):
    """Rebalance after nodes join, and repair of a lost node, on a cluster of their own."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(nodes=6, name="moving")
        random.seed(12)
        cls.files = {}
        for n in range(40):
            data = os.urandom(int(2 ** random.uniform(math.log2(50_000), math.log2(3 << 20))))
            cls.files[f"m/{n}"] = data
            assert cls.cluster.put(f"m/{n}", data)[0] == 201

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def test_1_rebalance_after_two_nodes_join_keeps_reads_working(self):
        cluster = self.cluster
        for _ in range(2):
            cluster.add_node()
        wait_for(lambda: len([n for n in cluster.node_list() if n["alive"]]) == 8, 10, "8 live nodes")
        self.assertEqual(spread(cluster.node_list()), math.inf, "the new nodes are empty")
        stop, failures, reads = threading.Event(), [], [0]

        def reader():
            names = list(self.files)
            while not stop.is_set():
                name = random.choice(names)
                status, _, body = cluster.get(name)
                reads[0] += 1
                if status != 200 or body != self.files[name]:
                    failures.append((name, status, len(body)))

        thread = threading.Thread(target=reader)
        thread.start()
        status, _, body = cluster.request("POST", "/admin/rebalance?target=1.05")
        self.assertEqual(status, 202, body)
        self.assertEqual(cluster.request("POST", "/admin/rebalance")[0], 409, "one at a time")
        progress = wait_for(lambda: (lambda p: p if not p["running"] else None)(json.loads(cluster.request("GET", "/admin/rebalance")[2])),
                            120, "the rebalance to finish")
        stop.set()
        thread.join()
        self.assertEqual(failures, [], "GETs during the rebalance")
        self.assertGreater(reads[0], 10)
        self.assertIsNone(progress.get("error"))
        self.assertGreater(progress["parts_moved"], 0)
        self.assertLessEqual(spread(cluster.node_list()), 1.05, progress)
        for name, data in self.files.items():
            layout = cluster.layout(name)
            self.assertEqual(len({p["node"] for p in layout["parts"]}), 6, f"{name}: two parts on one node")
            self.assertEqual(cluster.get(name)[2], data, name)

    def test_2_repair_rebuilds_a_lost_nodes_parts_elsewhere(self):
        cluster = self.cluster
        lost = max(cluster.node_list(), key=lambda n: n["parts"])
        cluster.node_process(lost["address"]).kill()
        wait_for(lambda: not next(n for n in cluster.node_list() if n["id"] == lost["id"])["alive"], 10, "the node seen down")
        self.assertEqual(cluster.request("POST", "/admin/repair")[0], 400)
        status, _, body = cluster.request("POST", f"/admin/repair?node={lost['id']}")
        self.assertEqual(status, 202, body)
        progress = wait_for(lambda: (lambda p: p if not p["running"] else None)(json.loads(cluster.request("GET", "/admin/repair")[2])),
                            120, "the repair to finish")
        self.assertEqual((progress["failed_parts"], progress["parts_left"]), (0, 0), progress)
        self.assertGreater(progress["parts_moved"], 0)
        for name in self.files:
            self.assertNotIn(lost["id"], [p["node"] for p in cluster.layout(name)["parts"]], name)
        # A second node lost: every file still reads, since none has a part on the first any more.
        second = next(n for n in cluster.node_list() if n["alive"] and n["parts"] > 0)
        cluster.node_process(second["address"]).kill()
        for name, data in self.files.items():
            self.assertEqual(cluster.get(name)[2], data, name)


if __name__ == "__main__":
    BIN = sys.argv.pop(1)
    ROOT = tempfile.mkdtemp(prefix="filestore-")
    try:
        CLUSTER = Cluster()
        result = unittest.main(exit=False, verbosity=2).result
    finally:
        if CLUSTER:
            CLUSTER.stop()
        if os.environ.get("FILES_TEST_KEEP"):
            print("kept", ROOT)
        else:
            shutil.rmtree(ROOT, ignore_errors=True)
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
