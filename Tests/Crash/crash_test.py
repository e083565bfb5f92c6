#!/usr/bin/env python3
"""Acknowledged writes survive kill -9.

    Tests/Crash/crash_test.py PATH_TO_IPROTOD [--kills N] [--fsync always|batch|never] [--seed S]

Writers pipeline REPLACE requests over their own connections, each owning its
own slots and counting each slot's values up; a switcher flips the storage to
read-only and back now and then. After a random 0.2-1.2 s the server gets
SIGKILL and is started again on the same --data-dir, with snapshots every
0.3 s so that kills also land during snapshots. After each restart every slot
must hold the last value acknowledged for it, or a later one that was sent
(sent but unanswered requests may or may not have run), and the storage state
must be the last acknowledged one, or the one whose switch was in flight.
Ends with a graceful stop and one more check. Prints the figures and "passed"
or the first problems, and exits 1 on any.
"""
import argparse
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from iproto import (READ, REPLACE, SWITCH_READONLY, SWITCH_READWRITE, Server, frame,  # noqa: E402
                    mp_str_value, mp_uint, read_reply, replace_body)

WRITERS = 4
SLOTS_PER_WRITER = 50
PIPELINE = 8
PROBE_SLOT = 999  # written only to learn the state: read-write accepts it, read-only refuses with 256
READ_ONLY = 256


class Model:
    """What was sent and acknowledged, per slot, and the state switches."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}
        self.acked = {}
        self.acked_writes = 0
        self.state = "read-write"
        self.state_in_flight = None
        self.switches = 0


def writer(port, slots, model, failures):
    sock = socket.create_connection(("127.0.0.1", port))
    request_id = 0
    try:
        while True:
            batch = []
            for _ in range(PIPELINE):
                slot = slots[request_id % len(slots)]
                with model.lock:
                    seq = model.sent.get(slot, 0) + 1
                    model.sent[slot] = seq
                value = f"{slot}:{seq}:".ljust(random.randint(8, 200), "x")
                batch.append((request_id, slot, seq, frame(REPLACE, request_id, replace_body(slot, value))))
                request_id += 1
            sock.sendall(b"".join(f for *_, f in batch))
            for expected_id, slot, seq, _ in batch:
                func_id, reply_id, code, body = read_reply(sock)
                if reply_id != expected_id or func_id != REPLACE:
                    failures.append(f"reply {reply_id} to 0x{func_id:08x} where {expected_id} was expected")
                    return
                if code == 0:
                    with model.lock:
                        model.acked[slot] = seq
                        model.acked_writes += 1
                elif code != READ_ONLY:
                    failures.append(f"REPLACE {slot} got code {code}: {body!r}")
                    return
    except OSError:
        return  # the server was killed
    finally:
        sock.close()


def switcher(port, model, stop):
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        while not stop.is_set():
            time.sleep(random.uniform(0.05, 0.15))
            for func_id, state in ((SWITCH_READONLY, "read-only"), (SWITCH_READWRITE, "read-write")):
                with model.lock:
                    model.state_in_flight = state
                sock.sendall(frame(func_id, 1, b""))
                _, _, code, _ = read_reply(sock)
                with model.lock:
                    model.state_in_flight = None
                    if code == 0:
                        model.state = state
                        model.switches += 1
                time.sleep(0.01)
    except OSError:
        return
    finally:
        sock.close()


def call(sock, func_id, body):
    sock.sendall(frame(func_id, 7, body))
    return read_reply(sock)


def check(port, model):
    """Problems found in the restarted server's storage and state; leaves it read-write."""
    problems = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        slots = sorted(model.sent)
        sock.sendall(b"".join(frame(READ, slot, mp_uint(slot)) for slot in slots))
        for slot in slots:
            _, reply_id, code, body = read_reply(sock)
            if code != 0 or reply_id != slot:
                problems.append(f"READ {slot}: code {code}, request_id {reply_id}")
                continue
            value = mp_str_value(body).decode()
            acked, sent = model.acked.get(slot, 0), model.sent[slot]
            if not value:
                if acked:
                    problems.append(f"slot {slot} is empty, but write {acked} was acknowledged")
                continue
            owner, seq = value.split(":")[:2]
            if int(owner) != slot or not acked <= int(seq) <= sent:
                problems.append(f"slot {slot} holds {value[:20]!r}: acknowledged {acked}, sent up to {sent}")
        _, _, code, _ = call(sock, REPLACE, replace_body(PROBE_SLOT, "probe"))
        state = "read-write" if code == 0 else "read-only" if code == READ_ONLY else f"code {code}"
        allowed = {model.state, model.state_in_flight} - {None}
        if state not in allowed:
            problems.append(f"state is {state}; the last acknowledged was {model.state}, in flight: {model.state_in_flight}")
        if state != "read-write":
            _, _, code, _ = call(sock, SWITCH_READWRITE, b"")
            if code != 0:
                problems.append(f"could not switch back to read-write: code {code}")
        model.state, model.state_in_flight = "read-write", None
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("iprotod")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--fsync", default="batch", choices=["always", "batch", "never"])
    parser.add_argument("--seed", type=int, default=int(time.time()))
    options = parser.parse_args()
    random.seed(options.seed)

    work = tempfile.mkdtemp(prefix="iproto-crash-")
    log = os.path.join(work, "iprotod.log")
    argv = [options.iprotod, "--listen", "127.0.0.1:0", "--metrics-listen", "", "--rate-limit", "0",
            "--rate-limit-per-ip", "0",
            "--data-dir", os.path.join(work, "data"), "--fsync", options.fsync, "--snapshot-interval", "0.3"]
    model = Model()
    problems = []
    started = time.monotonic()
    try:
        server = Server(argv, log=log)
        for kill in range(options.kills):
            stop = threading.Event()
            failures = []
            threads = [threading.Thread(target=writer, args=(server.port, list(range(w, WRITERS * SLOTS_PER_WRITER, WRITERS)),
                                                              model, failures)) for w in range(WRITERS)]
            threads.append(threading.Thread(target=switcher, args=(server.port, model, stop)))
            for thread in threads:
                thread.start()
            time.sleep(random.uniform(0.2, 1.2))
            server.kill()
            stop.set()
            for thread in threads:
                thread.join()
            problems += [f"kill {kill + 1}: {failure}" for failure in failures]
            server = Server(argv, log=log)
            problems += [f"after kill {kill + 1}: {problem}" for problem in check(server.port, model)]
            if problems:
                break
        if not problems:
            status, _ = server.stop()
            if status != 0:
                problems.append(f"graceful stop exited {status}")
            server = Server(argv, log=log)
            problems += [f"after the graceful stop: {problem}" for problem in check(server.port, model)]
        server.kill()
    except Exception as error:  # a server that did not come back is a failure, not a crash of the test
        problems.append(f"{type(error).__name__}: {error}")

    print(f"crash test (--fsync {options.fsync}, seed {options.seed}): {options.kills} kills in "
          f"{time.monotonic() - started:.1f} s, {model.acked_writes} acknowledged writes over "
          f"{len(model.sent)} slots, {model.switches} acknowledged state switches")
    for problem in problems[:10]:
        print(f"  FAIL {problem}")
    if problems:
        with open(log, errors="replace") as f:
            print("iprotod's log, last lines:\n" + "".join(f.readlines()[-20:]))
    shutil.rmtree(work, ignore_errors=True)
    print("failed" if problems else "passed")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
