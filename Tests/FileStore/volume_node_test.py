#!/usr/bin/env python3
"""Black-box tests of iproto-volumed, the file store's storage node (docs/file-store.md, "Node API").

    Tests/FileStore/volume_node_test.py BIN_DIR [unittest args, e.g. -k test_03]

Each test starts its own node from BIN_DIR on a free port of 127.0.0.1 with its own
data directory, asserts exact replies, and stops what it started. Temp dirs go under
one volnode-* dir, removed at the end (VOL_TEST_KEEP=1 keeps it and prints its path).
Prints one summary line; exit 0 when every test passed, 1 when one failed.
"""
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
import zlib

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from iproto import frame, read_reply  # noqa: E402

PUT, SEAL, GET, DELETE, INFO, NODE_INFO, LIST, PUT_LAST = (0x00040001 + i for i in range(8))
OK, UNKNOWN_REQUEST, BAD_REQUEST, BAD_ARGUMENTS, OUT_OF_RANGE, TOO_LONG = 0, 1, 2, 3, 4, 5
BODY_TOO_LARGE = 6
FULL, CHECKSUM_MISMATCH, NOT_FOUND, CONFLICT, CANNOT_PERSIST, CORRUPT = range(0x301, 0x307)

BIN = None
ROOT = None


def pack(*args):
    return b"".join(msgpack.packb(a, use_bin_type=True) for a in args)


class Node:
    def __init__(self, *extra, data_dir=None):
        self.data_dir = data_dir or tempfile.mkdtemp(dir=ROOT, prefix="node-")
        self.log = os.path.join(ROOT, os.path.basename(self.data_dir) + ".log")
        self.args = [os.path.join(BIN, "iproto-volumed"), "--listen", "127.0.0.1:0", "--data-dir", self.data_dir,
                     "--metrics-listen", "127.0.0.1:0", *extra]
        self.start()

    def start(self):
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log)
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("iproto-volumed listening on "):
            self.process.kill()
            raise RuntimeError(f"iproto-volumed did not start: {line!r}; see {self.log}")
        self.address = line.rsplit(" ", 1)[1]
        self.metrics_address = self.process.stdout.readline().decode().strip().rsplit(" ", 1)[1]

    def stop(self, kill=False):
        if self.process.poll() is None:
            (self.process.kill if kill else self.process.terminate)()
        self.process.wait(timeout=10)
        self.process.stdout.close()

    def restart(self, kill=False):
        self.stop(kill)
        self.start()

    def connect(self):
        host, port = self.address.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=5)
        return sock

    def call(self, func_id, *args, body=None):
        with self.connect() as sock:
            sock.sendall(frame(func_id, 7, pack(*args) if body is None else body))
            _, request_id, code, reply = read_reply(sock)
            assert request_id == 7
            return code, (msgpack.unpackb(reply, raw=False) if reply else None)

    def put(self, part, chunk, data, checksum=None):
        return self.call(PUT, part, chunk, zlib.crc32(data) if checksum is None else checksum, data)

    def metric(self, name):
        with urllib.request.urlopen(f"http://{self.metrics_address}/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no metric {name}")


class VolumeNodeTest(unittest.TestCase):
    def setUp(self):
        self.nodes = []

    def tearDown(self):
        for node in self.nodes:
            node.stop(kill=True)

    def node(self, *extra, data_dir=None):
        node = Node(*extra, data_dir=data_dir)
        self.nodes.append(node)
        return node

    def test_01_a_part_goes_up_in_chunks_is_sealed_and_read_back(self):
        node = self.node("--capacity", "64M")
        chunks = [os.urandom(1 << 20), os.urandom(1000), b""]
        for number, data in enumerate(chunks):
            self.assertEqual(node.put(5, number, data), (OK, None))
        self.assertEqual(node.call(INFO, 5), (OK, [3, (1 << 20) + 1000, False]))
        self.assertEqual(node.call(SEAL, 5, 3, (1 << 20) + 1000), (OK, None))
        self.assertEqual(node.call(INFO, 5), (OK, [3, (1 << 20) + 1000, True]))
        for number, data in enumerate(chunks):
            self.assertEqual(node.call(GET, 5, number), (OK, [zlib.crc32(data), data]))
        self.assertEqual(node.call(LIST, 0, 10), (OK, [[5], [True]]))
        info = node.call(NODE_INFO)[1]
        self.assertEqual(info[1], 64 << 20)
        self.assertGreater(info[2], (1 << 20) + 1000)
        self.assertEqual(info[3], 1)
        self.assertEqual(info[4], 0)
        self.assertEqual(len(info[0]), 36, "a UUID")

    def test_02_retries_are_no_ops_and_contradictions_are_conflicts(self):
        node = self.node("--capacity", "64M")
        self.assertEqual(node.put(1, 0, b"abc"), (OK, None))
        self.assertEqual(node.put(1, 0, b"abc"), (OK, None), "the same chunk again: a retry")
        self.assertEqual(node.put(1, 0, b"abd")[0], CONFLICT)
        self.assertEqual(node.call(SEAL, 1, 2, 3)[0], NOT_FOUND, "chunk 1 is missing")
        self.assertEqual(node.call(SEAL, 1, 1, 4)[0], CONFLICT, "the length disagrees")
        self.assertEqual(node.call(SEAL, 1, 1, 3), (OK, None))
        self.assertEqual(node.call(SEAL, 1, 1, 3), (OK, None), "sealing again with the same figures")
        self.assertEqual(node.call(SEAL, 1, 1, 5)[0], CONFLICT)
        self.assertEqual(node.put(1, 1, b"x")[0], CONFLICT, "a sealed part takes no chunk")
        self.assertEqual(node.call(GET, 1, 1)[0], NOT_FOUND)
        self.assertEqual(node.call(GET, 2, 0)[0], NOT_FOUND)
        self.assertEqual(node.call(INFO, 2)[0], NOT_FOUND)

    def test_03_a_chunk_that_does_not_match_its_checksum_is_refused_and_counted(self):
        node = self.node("--capacity", "64M")
        code, message = node.put(3, 0, b"hello", checksum=zlib.crc32(b"hellp"))
        self.assertEqual(code, CHECKSUM_MISMATCH, message)
        self.assertIn("do not match checksum", message)
        self.assertEqual(node.call(INFO, 3)[0], NOT_FOUND, "nothing was written")
        self.assertEqual(node.metric("iproto_vol_checksum_mismatches_total"), 1)

    def test_04_capacity_is_a_limit_with_a_metric(self):
        node = self.node("--capacity", "300K")
        self.assertEqual(node.put(1, 0, b"a" * (200 << 10)), (OK, None))
        code, message = node.put(1, 1, b"b" * (200 << 10))
        self.assertEqual(code, FULL, message)
        self.assertIn("is full", message)
        self.assertEqual(node.put(1, 1, b"b" * (50 << 10)), (OK, None), "a smaller chunk still fits")
        self.assertEqual(node.metric("iproto_vol_full_refusals_total"), 1)
        self.assertEqual(node.metric("iproto_vol_capacity_bytes"), 300 << 10)

    def test_05_deletes_and_seals_survive_a_kill(self):
        node = self.node("--capacity", "64M")
        for part in (1, 2, 3):
            self.assertEqual(node.put(part, 0, bytes([part]) * 100), (OK, None))
        self.assertEqual(node.call(SEAL, 1, 1, 100), (OK, None))
        self.assertEqual(node.call(DELETE, 2), (OK, None))
        self.assertEqual(node.call(DELETE, 2), (OK, None), "deleting again")
        self.assertEqual(node.call(DELETE, 99), (OK, None), "deleting an absent part")
        node.restart(kill=True)
        self.assertEqual(node.call(INFO, 1), (OK, [1, 100, True]))
        self.assertEqual(node.call(GET, 1, 0), (OK, [zlib.crc32(b"\x01" * 100), b"\x01" * 100]))
        self.assertEqual(node.call(INFO, 2)[0], NOT_FOUND)
        self.assertEqual(node.put(2, 0, b"\x02" * 100)[0], CONFLICT, "a deleted part's id is not reused")
        self.assertEqual(node.call(INFO, 3), (OK, [1, 100, False]), "an unsealed part stays unsealed")
        self.assertEqual(node.call(LIST, 0, 10), (OK, [[1, 3], [True, False]]))
        self.assertEqual(node.call(LIST, 1, 10), (OK, [[3], [False]]))
        self.assertEqual(node.call(LIST, 0, 0)[0], OUT_OF_RANGE)
        self.assertEqual(node.call(LIST, 0, 10001)[0], OUT_OF_RANGE)

    def test_13_a_last_chunk_seals_its_part_in_one_write_or_writes_nothing(self):
        node = self.node("--capacity", "64M")
        first, last = os.urandom(5000), os.urandom(777)
        put_last = lambda part, chunk, data, length: node.call(PUT_LAST, part, chunk, zlib.crc32(data), data, length)
        self.assertEqual(put_last(1, 0, first, 5000), (OK, None), "a one-chunk part")
        self.assertEqual(node.call(INFO, 1), (OK, [1, 5000, True]))
        # Refused seals write nothing: the chunk is not stored either.
        self.assertEqual(node.put(2, 0, first), (OK, None))
        self.assertEqual(put_last(2, 2, last, 5777)[0], NOT_FOUND, "chunk 1 is missing")
        self.assertEqual(put_last(2, 1, last, 5778)[0], CONFLICT, "the length disagrees")
        self.assertEqual(node.call(INFO, 2), (OK, [1, 5000, False]))
        self.assertEqual(put_last(2, 1, last, 5777), (OK, None))
        self.assertEqual(node.call(INFO, 2), (OK, [2, 5777, True]))
        # A retry after a lost reply is a no-op; contradicting it is a conflict.
        self.assertEqual(put_last(2, 1, last, 5777), (OK, None))
        self.assertEqual(put_last(2, 1, last[:-1] + b"x", 5777)[0], CONFLICT)
        self.assertEqual(put_last(2, 1, last, 5778)[0], CONFLICT)
        self.assertEqual(put_last(2, 2, last, 6554)[0], CONFLICT, "a sealed part takes no chunk")
        code, message = node.call(PUT_LAST, 3, 0, zlib.crc32(last) ^ 1, last, 777)
        self.assertEqual(code, CHECKSUM_MISMATCH, message)
        code, message = put_last(3, 4294967295, last, 777)
        self.assertEqual(code, OUT_OF_RANGE, message)
        self.assertEqual(node.call(INFO, 3)[0], NOT_FOUND, "nothing was written")
        self.assertEqual(put_last(3, 0, b"", 0), (OK, None), "an empty chunk")
        node.restart(kill=True)
        self.assertEqual(node.call(INFO, 1), (OK, [1, 5000, True]))
        self.assertEqual(node.call(INFO, 2), (OK, [2, 5777, True]))
        self.assertEqual(node.call(INFO, 3), (OK, [1, 0, True]))
        self.assertEqual(node.call(GET, 2, 1), (OK, [zlib.crc32(last), last]))

    def test_06_pipelined_writes_share_syncs(self):
        """32 chunks sent in one write arrive in one read: the worker's reply barrier
        appends them together, so there are far fewer syncs than chunks."""
        node = self.node("--capacity", "64M", "--workers", "1")
        body = b"".join(frame(PUT, n, pack(9, n, zlib.crc32(bytes([n]) * 1000), bytes([n]) * 1000)) for n in range(32))
        with node.connect() as sock:
            sock.sendall(body)
            codes = [read_reply(sock)[2] for _ in range(32)]
        self.assertEqual(codes, [OK] * 32)
        self.assertEqual(node.metric("iproto_vol_chunks_written_total"), 32)
        commits = node.metric("iproto_vol_commits_total")
        self.assertLessEqual(commits, 4, f"{commits} syncs for 32 pipelined chunks")
        self.assertEqual(node.metric("iproto_vol_commit_records_total"), 32)

    def test_07_oversized_chunks_and_garbage_are_errors_and_the_node_keeps_serving(self):
        node = self.node("--capacity", "64M", "--max-chunk", "64K")
        self.assertEqual(node.put(1, 0, b"x" * (64 << 10)), (OK, None))
        self.assertEqual(node.put(1, 1, b"x" * ((64 << 10) + 1))[0], OUT_OF_RANGE, "over --max-chunk, under the body limit")
        with node.connect() as sock:
            sock.sendall(frame(PUT, 1, b"\x00" * ((64 << 10) + (4 << 10) + 1)))
            self.assertEqual(read_reply(sock)[2], BODY_TOO_LARGE)
        with node.connect() as sock:
            sock.sendall(os.urandom(4096))
            sock.settimeout(5)
            try:
                while sock.recv(65536):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
        for args, code in [((), BAD_ARGUMENTS), ((-1, 0, 0, b""), OUT_OF_RANGE), ((1, 2 ** 32, 0, b""), OUT_OF_RANGE),
                           (("1", 0, 0, b""), BAD_ARGUMENTS), ((1, 0, 0, "text"), BAD_ARGUMENTS)]:
            self.assertEqual(node.call(PUT, *args)[0], code, args)
        self.assertEqual(node.call(0x00049999)[0], UNKNOWN_REQUEST)
        self.assertEqual(node.call(GET, 1, 0)[0], OK, "still serving")

    def test_08_a_torn_volume_tail_makes_it_read_only_and_keeps_its_chunks(self):
        node = self.node("--capacity", "64M")
        self.assertEqual(node.put(1, 0, b"kept" * 100), (OK, None))
        node.stop(kill=True)
        volume = os.path.join(node.data_dir, "volumes", "00000001.dat")
        size = os.path.getsize(volume)
        with open(volume, "ab") as f:
            f.write(b"PRT1" + os.urandom(20))
        node.start()
        self.assertEqual(os.path.getsize(volume), size + 24, "the tail is kept, never cut")
        self.assertEqual(node.call(GET, 1, 0), (OK, [zlib.crc32(b"kept" * 100), b"kept" * 100]))
        self.assertEqual(node.call(NODE_INFO)[1][4], 1, "one read-only volume")
        self.assertEqual(node.metric("iproto_vol_read_only_volumes"), 1)
        self.assertEqual(node.put(1, 1, b"new"), (OK, None), "new writes go to a new volume")
        self.assertTrue(os.path.exists(os.path.join(node.data_dir, "volumes", "00000002.dat")))
        with open(node.log) as log:
            self.assertIn("volume is read-only", log.read())

    def test_09_a_stored_chunk_that_rots_is_reported_not_served(self):
        node = self.node("--capacity", "64M")
        data = b"rot!" * 256
        self.assertEqual(node.put(1, 0, data), (OK, None))
        node.stop()
        volume = os.path.join(node.data_dir, "volumes", "00000001.dat")
        with open(volume, "r+b") as f:
            content = f.read()
            offset = content.index(data) + 10
            f.seek(offset)
            f.write(b"X")
        node.start()
        code, message = node.call(GET, 1, 0)
        self.assertEqual(code, CORRUPT, message)
        self.assertEqual(node.metric("iproto_vol_corrupt_reads_total"), 1)

    def test_10_the_node_registers_at_its_gateway_and_keeps_registering(self):
        received = []

        class Gateway(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(200 if len(received) != 2 else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            node = self.node("--capacity", "64M", "--gateway", f"http://127.0.0.1:{server.server_address[1]}",
                             "--registration-interval", "0.2")
            deadline = time.time() + 10
            while len(received) < 4 and time.time() < deadline:
                time.sleep(0.05)
            self.assertGreaterEqual(len(received), 4, "registers again after a refusal")
            node_id = node.call(NODE_INFO)[1][0]
            for path, body in received:
                self.assertEqual(path, "/nodes")
                self.assertEqual(body, {"address": node.address, "node": node_id})
            self.assertGreaterEqual(node.metric("iproto_vol_registration_failures_total"), 1)
        finally:
            server.shutdown()
            server.server_close()

    def test_11_bad_flags_exit_64_with_a_message(self):
        for extra in (["--capacity", "12X"], ["--capacity", "0"], ["--max-chunk", "17M"], ["--gateway", "ftp://x"],
                      ["--compact-garbage", "0"], ["--compact-garbage", "1.5"], ["--compact-interval", "-1"]):
            run = subprocess.run([os.path.join(BIN, "iproto-volumed"), "--data-dir", ROOT + "/unused", *extra],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(run.returncode, 64, (extra, run.stderr))
            self.assertTrue(run.stderr.startswith("iproto-volumed: ") or "Error:" in run.stderr, run.stderr)

    def test_12_compaction_gives_deleted_parts_bytes_back_and_keeps_the_rest(self):
        node = self.node("--capacity", "64M", "--volume-size", "1M", "--compact-interval", "0.2", "--compact-garbage", "0.3")
        chunk = 300 << 10
        data = {part: os.urandom(chunk) for part in range(1, 9)}
        for part, bytes_ in data.items():
            self.assertEqual(node.put(part, 0, bytes_), (OK, None))
            self.assertEqual(node.call(SEAL, part, 1, chunk), (OK, None))
        volumes = os.path.join(node.data_dir, "volumes")

        def on_disk():
            return sum(os.path.getsize(os.path.join(volumes, name)) for name in os.listdir(volumes) if name.endswith(".dat"))

        used, disk = node.call(NODE_INFO)[1][2], on_disk()
        self.assertGreater(used, 8 * chunk)
        deleted = (2, 3, 4, 6, 7, 8)
        for part in deleted:
            self.assertEqual(node.call(DELETE, part), (OK, None))
        deadline = time.monotonic() + 15
        while node.call(NODE_INFO)[1][2] > used - 5 * chunk and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertLess(node.call(NODE_INFO)[1][2], used - 5 * chunk, "compaction gave back the deleted parts' bytes")
        self.assertLess(on_disk(), disk - 5 * chunk, "and the volume files shrank")
        self.assertGreaterEqual(node.metric("iproto_vol_compactions_total"), 1)
        self.assertGreaterEqual(node.metric("iproto_vol_compaction_reclaimed_bytes_total"), 5 * chunk)
        self.assertEqual(node.metric("iproto_vol_compaction_failures_total"), 0)
        for attempt in range(2):
            for part in (1, 5):
                self.assertEqual(node.call(GET, part, 0), (OK, [zlib.crc32(data[part]), data[part]]), (attempt, part))
                self.assertEqual(node.call(INFO, part), (OK, [1, chunk, True]))
            for part in deleted:
                self.assertEqual(node.call(INFO, part)[0], NOT_FOUND)
                self.assertEqual(node.put(part, 0, b"x")[0], CONFLICT, "a deleted part stays deleted after compaction")
            self.assertEqual(node.call(LIST, 0, 10), (OK, [[1, 5], [True, True]]))
            node.restart(kill=True)
        self.assertLess(node.metric("iproto_vol_garbage_bytes"), chunk)


if __name__ == "__main__":
    BIN = sys.argv.pop(1)
    ROOT = tempfile.mkdtemp(prefix="volnode-")
    try:
        result = unittest.main(exit=False, verbosity=2).result
    finally:
        if os.environ.get("VOL_TEST_KEEP"):
            print("kept", ROOT)
        else:
            shutil.rmtree(ROOT, ignore_errors=True)
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
