"""A Python client for the KV cluster (docs: /work/kv-spec.md) and launchers for etcd and iproto-kvd.

Every client call returns (outcome, value_or_message): outcome is "ok", "fail"
(surely did not happen) or "unknown" (a write that may or may not have taken
effect: 0x204, another code, a timeout or a connection lost mid-request).
Reads never return "unknown": a read that got no answer had no effect, so it
is "fail".
"""
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

import msgpack

from iproto import frame, read_reply

KV_SET = 0x00030001
KV_GET = 0x00030002
KV_DELETE = 0x00030003
KV_HEARTBEAT = 0x00030004
KV_REPLICA_READ = 0x00031002
KV_CLUSTER_INFO = 0x00031004
KV_REPLICA_SCAN = 0x00031005
KV_REPLICA_FETCH = 0x00031006

KV_NOT_LEADER = 0x201
KV_NO_LEADER = 0x202
KV_REPLICAS_UNAVAILABLE = 0x203
KV_OUTCOME_UNKNOWN = 0x204
# Codes that mean the request surely did not run.
FAILED_CODES = {3, 5, 7, 8, KV_NOT_LEADER, KV_NO_LEADER, KV_REPLICAS_UNAVAILABLE}

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


def pack(*args):
    return b"".join(msgpack.packb(a, use_bin_type=True) for a in args)


def unpack(body):
    if not body:
        return None
    return msgpack.unpackb(body, raw=False)


class NotSent(Exception):
    """The request never left: nothing happened (connect failed)."""


class Node:
    """One connection to one node. Not thread-safe; one per thread.

    After any transport error or timeout the socket is closed (a late reply must
    never be taken for the next request's), and the next call reconnects."""

    def __init__(self, address, timeout=3.0, connect_timeout=1.0):
        self.address = address
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.sock = None
        self.request_id = 0

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _connect(self):
        host, port = self.address.rsplit(":", 1)
        try:
            sock = socket.create_connection((host, int(port)), timeout=self.connect_timeout)
        except OSError as error:
            raise NotSent(f"connect to {self.address}: {error}") from error
        sock.settimeout(self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock

    def call(self, func_id, body=b""):
        """(return_code, decoded body). Raises NotSent, or OSError/ConnectionError/
        socket.timeout once the request may have been sent."""
        if self.sock is None:
            self._connect()
        self.request_id = (self.request_id + 1) & 0xFFFFFFFF
        try:
            self.sock.sendall(frame(func_id, self.request_id, body))
            while True:
                reply_func, reply_id, code, reply_body = read_reply(self.sock)
                if reply_id == self.request_id:
                    break
        except BaseException:
            self.close()
            raise
        return code, unpack(reply_body)

    def _write(self, func_id, body):
        try:
            code, reply = self.call(func_id, body)
        except NotSent as error:
            return FAIL, str(error)
        except (OSError, ConnectionError, ValueError) as error:
            return UNKNOWN, f"{self.address}: {type(error).__name__}: {error}"
        if code == 0:
            return OK, None
        message = f"code 0x{code:x}: {reply}"
        return (FAIL if code in FAILED_CODES else UNKNOWN), message, code

    def _read(self, func_id, body):
        try:
            code, reply = self.call(func_id, body)
        except NotSent as error:
            return FAIL, str(error)
        except (OSError, ConnectionError, ValueError) as error:
            return FAIL, f"{self.address}: {type(error).__name__}: {error}"
        if code == 0:
            return OK, reply
        return FAIL, f"code 0x{code:x}: {reply}", code

    # The public calls return (outcome, value_or_message); _with_code keeps the code too.
    def set(self, key, value):
        return self._write(KV_SET, pack(key, value))[:2]

    def delete(self, key):
        return self._write(KV_DELETE, pack(key))[:2]

    def get(self, key):
        return self._read(KV_GET, pack(key))[:2]

    def heartbeat(self):
        return self._read(KV_HEARTBEAT, b"")[:2]

    def cluster_info(self):
        return self._read(KV_CLUSTER_INFO, b"")[:2]

    def replica_scan(self, after, limit):
        return self._read(KV_REPLICA_SCAN, pack(after, limit))[:2]

    def replica_read(self, epoch, key):
        return self._read(KV_REPLICA_READ, pack(epoch, key))[:2]

    def replica_fetch(self, keys):
        """The node's own records of up to 1,000 keys, no epoch involved: {key: (version, kind, value)}.
        Each answer covers the keys asked in order up to a byte budget, so ask again after the last."""
        remaining, records = list(keys), {}
        while remaining:
            outcome, reply = self._read(KV_REPLICA_FETCH, pack(remaining))[:2]
            if outcome != OK:
                return outcome, reply
            found, versions, kinds, values = reply
            records.update({k: (v, kind, value) for k, v, kind, value in zip(found, versions, kinds, values)})
            if not found or found[-1] not in remaining:
                break
            remaining = remaining[remaining.index(found[-1]) + 1:]
        return OK, records

    def request(self, kind, *args):
        """("set"|"get"|"delete"|"heartbeat", args) -> (outcome, value_or_message, code or None)."""
        if kind == "set":
            result = self._write(KV_SET, pack(*args))
        elif kind == "delete":
            result = self._write(KV_DELETE, pack(*args))
        elif kind == "get":
            result = self._read(KV_GET, pack(*args))
        elif kind == "heartbeat":
            result = self._read(KV_HEARTBEAT, b"")
        else:
            raise ValueError(kind)
        return result if len(result) == 3 else result + (None,)


def leader_from_message(message):
    """The address at the end of a 0x201 message ("...; the leader is 127.0.0.1:4002")."""
    word = str(message).rstrip(" .\"'").rsplit(" ", 1)[-1].strip("\"'")
    return word if ":" in word else None


class Cluster:
    """A client that follows the leader. Not thread-safe; one per thread.

    A 0x201 answer names the leader: reconnect there and try once more (0x201 means
    the request did not run, so the retry cannot apply it twice). A connect failure
    (nothing sent) moves on to the other addresses from the last heartbeat. A write
    whose connection broke after it was sent is "unknown" and is not retried."""

    def __init__(self, addresses, timeout=3.0, connect_timeout=1.0):
        self.addresses = list(addresses)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.node = None
        self.last_heartbeat = None

    def close(self):
        if self.node:
            self.node.close()
            self.node = None

    def _use(self, address):
        if self.node is None or self.node.address != address:
            self.close()
            self.node = Node(address, self.timeout, self.connect_timeout)
        if address not in self.addresses:
            self.addresses.append(address)

    def _candidates(self):
        first = [self.node.address] if self.node else []
        return first + [a for a in self.addresses if a not in first]

    def refresh(self):
        """Ask the nodes for a heartbeat until one answers; move to its leader. The heartbeat or None."""
        for address in self._candidates():
            node = Node(address, self.timeout, self.connect_timeout)
            outcome, reply, _ = node.request("heartbeat")
            node.close()
            if outcome == OK and isinstance(reply, dict):
                self.last_heartbeat = reply
                for node in reply.get("nodes") or []:
                    if node.get("address") and node["address"] not in self.addresses:
                        self.addresses.append(node["address"])
                if reply.get("leader"):
                    self._use(reply["leader"])
                return reply
        return None

    def heartbeat(self):
        reply = self.refresh()
        return (OK, reply) if reply is not None else (FAIL, "no node answered")

    def _run(self, kind, *args):
        if self.node is None:
            self._use(self.addresses[0])
        redirected = False
        tried = set()
        while True:
            outcome, result, code = self.node.request(kind, *args)
            if code == KV_NOT_LEADER and not redirected:
                leader = leader_from_message(result)
                if leader:
                    redirected = True
                    self._use(leader)
                    continue
            if outcome == FAIL and code is None:
                # Transport failure before (or, for reads, during) the request: nothing happened.
                tried.add(self.node.address)
                others = [a for a in self._candidates() if a not in tried]
                if others:
                    self._use(others[0])
                    continue
            return outcome, result

    def set(self, key, value):
        return self._run("set", key, value)

    def delete(self, key):
        return self._run("delete", key)

    def get(self, key):
        return self._run("get", key)


# ---------------------------------------------------------------- processes

def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _wait_line(process, timeout):
    """The first stdout line of process, or None after timeout seconds or at EOF."""
    deadline = time.monotonic() + timeout
    fd = process.stdout.fileno()
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    line, rest = data.split(b"\n", 1)
    return line.decode(errors="replace").strip(), rest


def _drain(stream, log_path, first=b""):
    """Copy the rest of a child's stdout to its log, so the pipe never fills."""
    def run():
        with open(log_path, "ab") as log:
            if first:
                log.write(first)
            while True:
                chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
                if not chunk:
                    return
                log.write(chunk)
                log.flush()
    threading.Thread(target=run, daemon=True).start()


class Etcd:
    """A one-member etcd on free ports of `host` (args from the spec), data in a temp dir."""

    def __init__(self, host="127.0.0.1", log=None, binary="etcd", timeout=20):
        self.dir = tempfile.mkdtemp(prefix="kv-etcd-")
        self.host = host
        self.client_port = free_port(host)
        self.peer_port = free_port(host)
        while self.peer_port == self.client_port:
            self.peer_port = free_port(host)
        self.url = f"http://{host}:{self.client_port}"
        peer = f"http://{host}:{self.peer_port}"
        self.log = log or os.path.join(self.dir, "etcd.log")
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [binary, "--name", "e1", "--data-dir", os.path.join(self.dir, "data"),
                 "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"e1={peer}", "--heartbeat-interval", "25", "--election-timeout", "250"],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"etcd exited with {self.process.returncode}; see {self.log}")
            if self.healthy():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd not healthy after {timeout} s; see {self.log}")
            time.sleep(0.1)

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as reply:
                return b'"true"' in reply.read()
        except OSError:
            return False

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class KVNode:
    """iproto-kvd started with `args` (argv after the binary). `prefix` goes before the
    binary (e.g. ["ip", "netns", "exec", "kv1"], which execs, so the pid is the node's).
    Up once it printed `iproto-kvd listening on HOST:PORT`; stdout and stderr go to `log`."""

    def __init__(self, binary, args, log, prefix=(), timeout=20):
        self.argv = list(prefix) + [binary] + list(args)
        self.log = log
        with open(log, "ab") as err:
            err.write(f"=== {time.strftime('%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            err.flush()
            self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        got = _wait_line(self.process, timeout)
        if got is None or not got[0].startswith("iproto-kvd listening on "):
            self.kill()
            status = self.process.returncode
            raise RuntimeError(f"iproto-kvd did not start (first line {got and got[0]!r}, status {status}); "
                               f"see {log}")
        line, rest = got
        self.address = line.rsplit(" ", 1)[1]
        _drain(self.process.stdout, log, line.encode() + b"\n" + rest)

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def kill(self):
        """SIGKILL and reap."""
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        return self.process.returncode

    def terminate(self, timeout=20):
        """SIGTERM; the exit status (SIGKILL and -9 after `timeout` s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9
