"""The iproto wire format and an iprotod launcher, shared by the Python tests."""
import signal
import struct
import subprocess
import time
import urllib.request

SWITCH_READONLY = 0x00010001
SWITCH_READWRITE = 0x00010002
REPLACE = 0x00020001
READ = 0x00020002
SHUTTING_DOWN = 8


def frame(func_id, request_id, body):
    return struct.pack("<III", func_id, len(body), request_id) + body


def mp_uint(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0xCC, n])
    if n < 0x10000:
        return b"\xcd" + struct.pack(">H", n)
    return b"\xce" + struct.pack(">I", n)


def mp_str(data):
    if len(data) < 32:
        return bytes([0xA0 | len(data)]) + data
    if len(data) < 0x100:
        return bytes([0xD9, len(data)]) + data
    return b"\xda" + struct.pack(">H", len(data)) + data


def mp_str_value(body):
    """The bytes of a body that is one MessagePack string."""
    if body and 0xA0 <= body[0] <= 0xBF:
        return body[1:1 + (body[0] & 0x1F)]
    if body[:1] == b"\xd9":
        return body[2:2 + body[1]]
    if body[:1] == b"\xda":
        return body[3:3 + struct.unpack(">H", body[1:3])[0]]
    raise ValueError(f"not a MessagePack string: {body.hex()}")


def replace_body(index, value):
    return mp_uint(index) + mp_str(value.encode() if isinstance(value, str) else value)


def receive_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_reply(sock):
    """The next reply: (func_id, request_id, return_code, body)."""
    func_id, length, request_id, code = struct.unpack("<IIII", receive_exactly(sock, 16))
    return func_id, request_id, code, receive_exactly(sock, length)


class Server:
    """iprotod started with `args` (argv, binary first), up once it printed its address.
    Its log goes to the file `log` (appended to), or nowhere; `env` replaces the environment."""

    def __init__(self, args, pass_fds=(), log=None, env=None):
        with open(log or "/dev/null", "ab") as stderr:
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, pass_fds=pass_fds, env=env)
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("iprotod listening on "):
            self.process.kill()
            raise RuntimeError(f"iprotod did not start: {line!r}" + (f"; see {log}" if log else ""))
        self.address = line.rsplit(" ", 1)[1]
        self.port = int(self.address.rsplit(":", 1)[1])
        self.metrics_port = None
        if "--metrics-listen" in args and args[args.index("--metrics-listen") + 1]:
            line = self.process.stdout.readline().decode().strip()
            self.metrics_port = int(line.rsplit(":", 1)[1])

    def metrics(self):
        """The Prometheus scrape as {'name{labels}': value}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        return {key: float(value) for key, value in
                (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))}

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    def stop(self):
        """SIGTERM; returns the exit status and the seconds it took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=30)
        return status, time.monotonic() - started

    def kill(self):
        self.process.kill()
        self.process.wait()
