"""Tests of the KV client's outcomes and leader following, against scripted servers.

    cd Tests/lib && python3 -m unittest test_kv -v
"""
import socket
import struct
import threading
import time
import unittest

import msgpack

import kv
from iproto import receive_exactly


class ScriptedServer:
    """Answers each request with script(func_id, args) -> ("reply", code, value) | ("close",) | ("hang",)."""

    def __init__(self, script):
        self.script = script
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests = []
        self.connections = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            while True:
                func, length, request_id = struct.unpack("<III", receive_exactly(conn, 12))
                unpacker = msgpack.Unpacker(raw=False)
                unpacker.feed(receive_exactly(conn, length) if length else b"")
                args = list(unpacker)
                self.requests.append((func, args))
                action = self.script(func, args)
                if action[0] == "close":
                    conn.close()
                    return
                if action[0] == "hang":
                    continue
                _, code, value = action
                body = msgpack.packb(value, use_bin_type=True)
                conn.sendall(struct.pack("<IIII", func, len(body), request_id, code) + body)
        except (OSError, ConnectionError):
            pass

    def close(self):
        self.listener.close()
        for conn in self.connections:
            try:
                conn.close()
            except OSError:
                pass


def dead_address():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"  # closed again: connecting is refused


class NodeOutcomes(unittest.TestCase):
    def node_answering(self, action):
        server = ScriptedServer(lambda func, args: action)
        self.addCleanup(server.close)
        node = kv.Node(server.address, timeout=0.5)
        self.addCleanup(node.close)
        return server, node

    def test_ok_values_and_request_encoding(self):
        store = {}

        def script(func, args):
            if func == kv.KV_SET:
                store[args[0]] = args[1]
                return ("reply", 0, None)
            if func == kv.KV_GET:
                return ("reply", 0, store.get(args[0]))
            return ("reply", 0, None)
        server = ScriptedServer(script)
        self.addCleanup(server.close)
        node = kv.Node(server.address)
        self.addCleanup(node.close)
        self.assertEqual(node.set("k", "text"), ("ok", None))
        self.assertEqual(node.get("k"), ("ok", "text"))
        self.assertEqual(node.set("b", b"\x00\x01"), ("ok", None))
        self.assertEqual(node.get("b"), ("ok", b"\x00\x01"))  # bin stays bin
        self.assertEqual(node.get("absent"), ("ok", None))
        self.assertEqual(node.delete("k"), ("ok", None))
        self.assertEqual(server.requests[0], (kv.KV_SET, ["k", "text"]))
        self.assertEqual(server.requests[-1], (kv.KV_DELETE, ["k"]))

    def test_refusals_are_failures(self):
        for code in (3, 5, 7, 8, 0x201, 0x202, 0x203):
            with self.subTest(code=hex(code)):
                _, node = self.node_answering(("reply", code, "refused"))
                outcome, message = node.set("k", "v")
                self.assertEqual(outcome, "fail")
                self.assertIn("refused", message)
                self.assertEqual(node.delete("k")[0], "fail")

    def test_outcome_unknown_and_other_codes_are_unknown_for_writes(self):
        for code in (0x204, 1, 0x205, 999):
            with self.subTest(code=hex(code)):
                _, node = self.node_answering(("reply", code, "hmm"))
                self.assertEqual(node.set("k", "v")[0], "unknown")
                self.assertEqual(node.delete("k")[0], "unknown")
                self.assertEqual(node.get("k")[0], "fail")  # a read has no effect

    def test_timeout_and_close_mid_request(self):
        for action in (("hang",), ("close",)):
            with self.subTest(action=action[0]):
                _, node = self.node_answering(action)
                started = time.monotonic()
                self.assertEqual(node.set("k", "v")[0], "unknown")
                self.assertLess(time.monotonic() - started, 2)
                self.assertEqual(node.get("k")[0], "fail")

    def test_connect_refused_is_a_failure(self):
        node = kv.Node(dead_address(), timeout=0.5)
        self.assertEqual(node.set("k", "v")[0], "fail")
        self.assertEqual(node.get("k")[0], "fail")

    def test_a_late_reply_is_not_taken_for_the_next(self):
        # The first request times out; its reply arrives late. The next request must get its own.
        # (Two things see to it: the socket is closed after a timeout, and replies with another
        # request id are skipped; this fails only with both gone.)
        calls = []

        def script(func, args):
            calls.append(args)
            if len(calls) == 1:
                time.sleep(0.8)
                return ("reply", 0, "late")
            return ("reply", 0, "second")
        server = ScriptedServer(script)
        self.addCleanup(server.close)
        node = kv.Node(server.address, timeout=0.4)
        self.addCleanup(node.close)
        self.assertEqual(node.get("a")[0], "fail")
        self.assertEqual(node.get("b"), ("ok", "second"))

    def test_leader_from_message(self):
        self.assertEqual(kv.leader_from_message("not the leader; the leader is 127.0.0.1:4002"), "127.0.0.1:4002")
        self.assertEqual(kv.leader_from_message("not the leader; the leader is 10.0.0.1:1."), "10.0.0.1:1")
        self.assertIsNone(kv.leader_from_message("not the leader; no idea"))


class ClusterFollowing(unittest.TestCase):
    def setUp(self):
        self.store = {}
        self.leader = ScriptedServer(self.leader_script)
        self.addCleanup(self.leader.close)
        self.follower = ScriptedServer(
            lambda func, args: ("reply", 0x201, f"not the leader; the leader is {self.leader.address}"))
        self.addCleanup(self.follower.close)

    def leader_script(self, func, args):
        if func == kv.KV_HEARTBEAT:
            return ("reply", 0, {"nodes": [{"id": "a", "address": self.leader.address, "role": "leader", "alive": True},
                                           {"id": "b", "address": self.follower.address, "role": "follower",
                                            "alive": True}],
                                 "leader": self.leader.address, "replication_factor": 3, "warnings": []})
        if func == kv.KV_SET:
            self.store[args[0]] = args[1]
            return ("reply", 0, None)
        return ("reply", 0, self.store.get(args[0]))

    def test_follows_not_leader_once(self):
        cluster = kv.Cluster([self.follower.address])
        self.addCleanup(cluster.close)
        self.assertEqual(cluster.set("k", "v"), ("ok", None))
        self.assertEqual(cluster.get("k"), ("ok", "v"))
        self.assertEqual(len(self.follower.requests), 1)  # then it stayed on the leader

    def test_redirect_loop_gives_up(self):
        other = ScriptedServer(lambda func, args: ("reply", 0x201, f"not the leader; the leader is {self.follower.address}"))
        self.addCleanup(other.close)
        # follower -> leader is fine; make a pair that point at each other.
        loop = ScriptedServer(lambda func, args: ("reply", 0x201, f"not the leader; the leader is {other.address}"))
        self.addCleanup(loop.close)
        cluster = kv.Cluster([loop.address])
        self.addCleanup(cluster.close)
        outcome, message = cluster.set("k", "v")
        self.assertEqual(outcome, "fail")
        self.assertEqual((len(loop.requests), len(other.requests)), (1, 1))

    def test_connect_failure_moves_to_heartbeat_addresses(self):
        cluster = kv.Cluster([self.leader.address])
        self.addCleanup(cluster.close)
        self.assertIsNotNone(cluster.refresh())
        self.assertIn(self.follower.address, cluster.addresses)
        dead = dead_address()
        cluster.addresses.insert(0, dead)
        cluster.node = kv.Node(dead)
        self.assertEqual(cluster.set("k", "v"), ("ok", None))  # dead -> next address -> (redirect) -> leader
        self.assertEqual(self.store, {"k": "v"})

    def test_write_broken_mid_request_is_not_retried(self):
        closer = ScriptedServer(lambda func, args: ("close",))
        self.addCleanup(closer.close)
        cluster = kv.Cluster([closer.address, self.leader.address])
        self.addCleanup(cluster.close)
        self.assertEqual(cluster.set("k", "v")[0], "unknown")
        self.assertEqual(self.store, {})
        # A read has no effect, so a broken read moves on to the next node.
        self.store["k"] = "w"
        self.assertEqual(cluster.get("k"), ("ok", "w"))


if __name__ == "__main__":
    unittest.main()
