"""The crash tests' workload and checker: pipelined writers and a state switcher
with a model of what was sent and acknowledged, and the check of a restarted
server against that model (Tests/Crash, Tests/PowerCut).

Writers pipeline REPLACE requests over their own connections, each owning its
own slots and counting each slot's values up; a switcher flips the storage to
read-only and back now and then. After a restart every slot must hold the last
value acknowledged for it, or a later one that was sent (sent but unanswered
requests may or may not have run), and the storage state must be the last
acknowledged one, or the one whose switch was in flight.
"""
import random
import socket
import threading
import time

from iproto import READ, REPLACE, SWITCH_READONLY, SWITCH_READWRITE, frame, mp_str_value, mp_uint, read_reply, replace_body

WRITERS = 4
SLOTS_PER_WRITER = 50
PIPELINE = 8
PROBE_SLOT = 999  # written only to learn the state: read-write accepts it, read-only refuses with 256
READ_ONLY = 256
CANNOT_PERSIST = 258  # storage_cannot_persist: the disk refused the write; not acknowledged


class Model:
    """What was sent and acknowledged, per slot, and the state switches."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}
        self.acked = {}
        self.acked_writes = 0
        self.state = "read-write"
        self.state_in_flight = None
        # Switches since the last acknowledged one answered CANNOT_PERSIST: not
        # acknowledged, so they may or may not have taken effect (docs/operations.md).
        self.states_unknown = set()
        self.switches = 0
        self.slot_checks = 0
        # Codes a REPLACE may get besides 0 without failing the run, and how many
        # REPLACEs and switches were refused with CANNOT_PERSIST.
        self.allowed_codes = {READ_ONLY}
        self.refused_writes = 0


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
                elif code in model.allowed_codes:
                    with model.lock:
                        model.refused_writes += code != READ_ONLY
                else:
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
                        model.states_unknown = set()
                        model.switches += 1
                    elif code == CANNOT_PERSIST:
                        model.refused_writes += 1
                        model.states_unknown.add(state)
                time.sleep(0.01)
    except OSError:
        return
    finally:
        sock.close()


def load_then_kill(server, model, seconds, meanwhile=None):
    """Runs the writers and the switcher against `server` for `seconds` (or,
    given `meanwhile`, while that function runs), then kills it with SIGKILL
    under that load. Returns the workers' failures."""
    stop = threading.Event()
    failures = []
    threads = [threading.Thread(target=writer, args=(server.port, list(range(w, WRITERS * SLOTS_PER_WRITER, WRITERS)),
                                                      model, failures)) for w in range(WRITERS)]
    threads.append(threading.Thread(target=switcher, args=(server.port, model, stop)))
    for thread in threads:
        thread.start()
    if meanwhile:
        meanwhile()
    else:
        time.sleep(seconds)  # a random moment to be killed at, not a wait for something
    server.kill()
    stop.set()
    for thread in threads:
        thread.join()
    return failures


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
            model.slot_checks += 1
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
        allowed = ({model.state, model.state_in_flight} | model.states_unknown) - {None}
        if state not in allowed:
            problems.append(f"state is {state}; the last acknowledged was {model.state}, in flight: "
                            f"{model.state_in_flight}, refused since: {sorted(model.states_unknown)}")
        if state != "read-write":
            _, _, code, _ = call(sock, SWITCH_READWRITE, b"")
            if code != 0:
                problems.append(f"could not switch back to read-write: code {code}")
        model.state, model.state_in_flight, model.states_unknown = "read-write", None, set()
    return problems
