#!/usr/bin/env python3
"""Zero-downtime restart of iprotod under load.

    Tests/Restart/restart_test.py PATH_TO_IPROTOD

Clients keep calling REPLACE while a second iprotod starts beside the first
and the first gets SIGTERM. Two ways to share the port are exercised:

  socket activation  the test holds the listening socket and passes it to both
                     processes as file descriptor 3 with LISTEN_FDS/LISTEN_PID,
                     as systemd does; the accept queue is shared.
  SO_REUSEPORT       each process binds the port itself with --reuse-port.

A client whose request is refused with code 8 (shutting down) or whose
connection is closed before the reply reconnects and sends it again: the
server guarantees that such a request was not run. Any other outcome is a
failure. Prints the figures, then "N passed, M failed".
"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from iproto import REPLACE, SHUTTING_DOWN, Server, frame, read_reply, replace_body  # noqa: E402

CLIENTS = 4
PHASE_SECONDS = 1.5


class Load:
    """CLIENTS threads, each calling REPLACE one request at a time, retrying refused requests."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {"sent": 0, "answered": 0, "retried": 0, "failed": 0}
        self.failures = []
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(CLIENTS)]

    def count(self, key, detail=None):
        with self.lock:
            self.counts[key] += 1
            if detail:
                self.failures.append(detail)

    def client(self, index):
        sock = None
        request_id = 0
        while not self.stop.is_set():
            request_id += 1
            request = frame(REPLACE, request_id, replace_body(index, f"v{request_id}"))
            deadline = time.monotonic() + 20
            while True:  # until answered
                if time.monotonic() > deadline:
                    self.count("failed", f"client {index}: request {request_id} never answered")
                    return
                try:
                    if sock is None:
                        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                    self.count("sent")
                    sock.sendall(request)
                    func_id, reply_id, code, _ = read_reply(sock)
                except (ConnectionError, OSError):
                    # Closed before the reply: the request was not run; send it again elsewhere.
                    self.count("retried")
                    if sock is not None:
                        sock.close()
                    sock = None
                    continue
                if code == SHUTTING_DOWN:
                    self.count("retried")
                    sock.close()
                    sock = None
                    continue
                if code != 0 or reply_id != request_id or func_id != REPLACE:
                    self.count("failed", f"client {index}: code {code}, id {reply_id} for {request_id}")
                else:
                    self.count("answered")
                break
        if sock is not None:
            sock.close()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()


def restart(name, start_server, port):
    first = start_server()
    with Load(port) as load:
        time.sleep(PHASE_SECONDS)
        second = start_server()
        answered_before = load.counts["answered"]
        status, seconds = first.stop()
        time.sleep(PHASE_SECONDS)
        answered_after = load.counts["answered"]
    second.stop()
    counts = load.counts
    print(f"{name}: sent {counts['sent']}, answered {counts['answered']}, retried {counts['retried']}, "
          f"failed {counts['failed']}; old process exited {status} after {seconds:.2f} s; "
          f"answered after the old one got SIGTERM: {answered_after - answered_before}")
    problems = list(load.failures)
    if status != 0:
        problems.append(f"the old process exited with {status}")
    if counts["answered"] == 0 or answered_after <= answered_before:
        problems.append("no requests were answered after the restart")
    for problem in problems:
        print(f"  FAIL {problem}")
    return not problems


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: restart_test.py PATH_TO_IPROTOD")
    iprotod = sys.argv[1]
    common = ["--metrics-listen", "", "--rate-limit", "0", "--rate-limit-per-ip", "0", "--shutdown-timeout", "10"]
    results = []

    # Socket activation: the listening socket is fd 3 in both servers, and the test keeps it open.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    if listener.fileno() != 3:
        os.dup2(listener.fileno(), 3)
    port = listener.getsockname()[1]
    activated = ["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"', iprotod] + common
    results.append(restart("socket activation", lambda: Server(activated, pass_fds=(3,)), port))
    if listener.fileno() != 3:
        os.close(3)
    listener.close()

    # SO_REUSEPORT: each server binds the same port.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    reuse = [iprotod, "--listen", f"127.0.0.1:{port}", "--reuse-port"] + common
    results.append(restart("SO_REUSEPORT", lambda: Server(reuse), port))

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
