#!/usr/bin/env python3
"""A KV cluster under faults, checked for linearizability, durability and convergence.

    Tests/Cluster/kv_history_test.py BIN_DIR [--nodes 5] [--rf 3] [--duration 60] [--clients 8]
        [--keys 200] [--seed N] [--partitions] [--lease-ttl S] [--out DIR]

Starts etcd and N iproto-kvd nodes from BIN_DIR (the first with --etcd, the others
with --join the first; --lease-ttl as given, the node's default without it), waits for a leader, then runs client threads
doing 50% GET, 40% SET of unique values, 10% DELETE over uuid4 keys, recording
every op with its start, end and outcome (ok / fail / unknown, kv-spec.md), while a
nemesis every few seconds kills -9 the leader or a follower, SIGTERMs a node (each
restarted after 1-3 s), or with --partitions cuts the leader off for 3-5 s.

Then, with everything restarted and healed:
  (a) linearizability of every key's register over the whole history
      (Tests/lib/linearizability.py), the final reads included;
  (b) the final GET of every key returns the last acknowledged write, or a write
      that may have replaced it (an unknown one, or one concurrent with it);
  (c) convergence, from KV_REPLICA_SCAN and KV_REPLICA_FETCH on every node: each
      key's highest version is on at least RF nodes, no two nodes hold different
      values at one version, no node holds a key the clients never used, and the
      highest record agrees with the final GET (retried for up to 30 s);
  (d) every SIGTERM'd node exited 0, and no node exited without being told to.

Writes OUT/history.jsonl (one op a line), OUT/summary.json, and the nodes' and
etcd's logs under OUT/logs. Exit 0 if every check passed, 1 if one failed,
2 if the cluster could not be set up. The workload and the nemesis are seeded
(--seed; printed), but thread and process timing is not, so a seed replays the
same choices, not the same interleaving.
"""
import argparse
import json
import math
import os
import random
import signal
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import kv  # noqa: E402
import netns  # noqa: E402
from linearizability import check_history  # noqa: E402

OP_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 1.0
SETTLE_S = 30
NODE_PORT_IN_NAMESPACE = 4100


class SetupError(Exception):
    pass


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class NodeSlot:
    def __init__(self, index, address, data_dir, log_path, prefix):
        self.index = index
        self.address = address
        self.data_dir = data_dir
        self.log_path = log_path
        self.prefix = prefix
        self.process = None
        self.expected_down = True  # False while it runs and nobody told it to stop


class Run:
    def __init__(self, args):
        self.args = args
        self.binary = os.path.join(args.bin_dir, "iproto-kvd")
        self.out = args.out
        self.lock = threading.Lock()
        self.history = []
        self.events = []
        self.problems = {"setup": [], "linearizability": [], "final-reads": [], "convergence": [], "processes": []}
        self.etcd = None
        self.net = None
        self.nodes = []
        self.stop = threading.Event()
        self.cluster_name = f"kvhist-{os.getpid()}"
        self.cleaned = False
        self.nemesis_thread = None
        self.history_written = False
        self.cleanup_lock = threading.Lock()

    # ------------------------------------------------------------ setup / cleanup

    def setup(self):
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        etcd_host = "127.0.0.1"
        if self.args.partitions:
            ok, why = netns.available()
            if ok:
                self.net = netns.Network(self.args.nodes)
                etcd_host = self.net.bridge_ip
                log(f"network namespaces {self.net.namespace(0)}.. on bridge {self.net.bridge} ({self.net.subnet}.0/24)")
            else:
                log(f"partitions skipped: network namespaces unavailable ({why})")
        self.etcd = kv.Etcd(host=etcd_host, log=os.path.join(self.out, "logs", "etcd.log"))
        log(f"etcd at {self.etcd.url}")
        for i in range(self.args.nodes):
            if self.net:
                address, prefix = f"{self.net.node_ip(i)}:{NODE_PORT_IN_NAMESPACE}", self.net.prefix(i)
            else:
                address, prefix = f"127.0.0.1:{kv.free_port()}", []
            slot = NodeSlot(i, address, os.path.join(self.out, "nodes", f"n{i}"),
                            os.path.join(self.out, "logs", f"n{i}.log"), prefix)
            os.makedirs(slot.data_dir, exist_ok=True)
            self.nodes.append(slot)
        for slot in self.nodes:
            self.start_node(slot)
            if slot.index == 0:
                self.wait_for(lambda: self.heartbeat(slot) is not None, 20,
                              "the first node to answer KV_HEARTBEAT")
        log("nodes: " + ", ".join(f"n{s.index}={s.address} (pid {s.process.pid})" for s in self.nodes))
        self.wait_for(lambda: self.leader() is not None, SETTLE_S, "a leader in KV_HEARTBEAT")
        deadline = time.monotonic() + 10
        while not self.converged() and time.monotonic() < deadline:
            time.sleep(0.2)
        log(f"leader: n{self.leader()}" + ("" if self.converged() else
                                            " (not every node is in every heartbeat yet; starting anyway)"))

    def wait_for(self, condition, seconds, what):
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise SetupError(f"no {what} after {seconds} s")
            time.sleep(0.2)

    def node_args(self, slot):
        args = ["--listen", slot.address, "--data-dir", slot.data_dir, "--replication-factor", str(self.args.rf),
                "--cluster", self.cluster_name]
        if self.args.lease_ttl is not None:
            args += ["--lease-ttl", str(self.args.lease_ttl)]
        if slot.index == 0:
            args += ["--etcd", self.etcd.url]
        else:
            args += ["--join", self.nodes[0].address]
        return args

    def start_node(self, slot, seconds=30):
        """Start (or restart) a node, trying again for up to `seconds` (a killed node's port may
        linger in TIME_WAIT if it binds without SO_REUSEADDR); the first start gets 8 s."""
        if not self.history:
            seconds = 8
        last, attempt = None, 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.cleaned:
                return False
            attempt += 1
            try:
                process = kv.KVNode(self.binary, self.node_args(slot), slot.log_path, prefix=slot.prefix)
                with self.cleanup_lock:
                    if self.cleaned:  # cleanup ran while it started (Ctrl-C during a restart)
                        process.kill()
                        return False
                    slot.process = process
                    slot.expected_down = False
                if attempt > 1:
                    log(f"n{slot.index} started on try {attempt}")
                return True
            except RuntimeError as error:
                last = error
                time.sleep(min(0.5 * attempt, 2.0))
        if not self.history:
            raise SetupError(f"n{slot.index} did not start in {seconds} s ({attempt} tries): {last}")
        self.problem("processes", f"n{slot.index} did not restart in {seconds} s ({attempt} tries): {last}")
        return False

    def cleanup(self):
        with self.cleanup_lock:
            if self.cleaned:
                return
            self.cleaned = True
            self.stop.set()
            for slot in self.nodes:
                if slot.process is not None:
                    slot.expected_down = True
                    slot.process.kill()
        # A node may be starting in the nemesis thread: it kills it itself once started
        # (self.cleaned); wait for that, then sweep for any process using our data dirs.
        if self.nemesis_thread is not None and self.nemesis_thread is not threading.current_thread():
            self.nemesis_thread.join(timeout=25)
        self.kill_strays()
        with self.cleanup_lock:
            if self.etcd is not None:
                self.etcd.stop()
                self.etcd = None
            if self.net is not None:
                errors = self.net.remove()
                if errors:
                    print("network cleanup: " + "; ".join(errors), file=sys.stderr)

    def kill_strays(self):
        """SIGKILL any process whose command line names this run's node data dirs (unique to the run)."""
        marker = os.path.join(os.path.abspath(self.out), "nodes", "").encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if marker in cmdline and int(pid) != os.getpid():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    print(f"killed stray node process {pid}", file=sys.stderr)
                except ProcessLookupError:
                    pass

    # ------------------------------------------------------------ cluster state

    def heartbeat(self, slot):
        node = kv.Node(slot.address, 1.0, 0.5)
        outcome, reply = node.heartbeat()
        node.close()
        return reply if outcome == kv.OK and isinstance(reply, dict) else None

    def index_of(self, address):
        return next((s.index for s in self.nodes if s.address == address), None)

    def leader(self):
        """The index of the node the running nodes' heartbeats name as leader, if any."""
        for slot in self.nodes:
            if slot.process is None or not slot.process.alive():
                continue
            reply = self.heartbeat(slot)
            if reply and reply.get("leader"):
                return self.index_of(reply["leader"])
        return None

    def converged(self):
        """Every node answers, they all name the same leader, and it lists every node alive."""
        leaders = set()
        for slot in self.nodes:
            reply = self.heartbeat(slot)
            if reply is None or not reply.get("leader"):
                return False
            leaders.add(reply["leader"])
            if len(leaders) > 1:
                return False
            nodes = reply.get("nodes") or []
            if len(nodes) < len(self.nodes) or not all(n.get("alive") for n in nodes):
                return False
        return True

    def problem(self, check, message):
        with self.lock:
            self.problems[check].append(message)

    def event(self, action, node, **extra):
        entry = {"time": time.monotonic(), "action": action, "node": node, **extra}
        with self.lock:
            self.events.append(entry)
        log(f"nemesis: {action} n{node}" + "".join(f" {k}={v}" for k, v in extra.items()))
        return entry

    # ------------------------------------------------------------ workload

    def client(self, index, keys):
        rng = random.Random(f"{self.args.seed}/client/{index}")
        cluster = kv.Cluster([s.address for s in self.nodes], OP_TIMEOUT_S, CONNECT_TIMEOUT_S)
        rate = self.args.keys * self.args.ops_per_key / (self.args.duration * self.args.clients)  # ops/s
        counter = 0
        next_at = time.monotonic()
        try:
            while not self.stop.is_set():
                key = rng.choice(keys)
                roll = rng.random()
                start = time.monotonic()
                if roll < 0.5:
                    kind, value = "get", None
                    outcome, result = cluster.get(key)
                elif roll < 0.9:
                    counter += 1
                    kind, value = "set", f"c{index}-{counter}"
                    outcome, result = cluster.set(key, value)
                else:
                    kind, value = "delete", None
                    outcome, result = cluster.delete(key)
                end = time.monotonic()
                op = {"key": key, "kind": kind, "value": result if kind == "get" and outcome == kv.OK else value,
                      "start": start, "end": end, "outcome": outcome, "client": index}
                if outcome != kv.OK:
                    op["message"] = str(result)
                with self.lock:
                    self.history.append(op)
                if outcome != kv.OK:
                    self.stop.wait(0.05)  # no leader yet, or a node just went away: do not spin
                next_at += rng.expovariate(rate)
                now = time.monotonic()
                if next_at < now - 1:
                    next_at = now
                self.stop.wait(max(0.0, next_at - now))
        finally:
            cluster.close()

    # ------------------------------------------------------------ nemesis

    def nemesis(self):
        rng = random.Random(f"{self.args.seed}/nemesis")
        actions = ["kill-leader", "kill-follower", "terminate"] + (["partition-leader"] if self.net else [])
        pause = (2.0, 5.0)
        if self.args.chaos:
            # The long run's mix: half the faults kill the leader, a sixth cut it off.
            actions = ["kill-leader"] * 3 + ["kill-follower", "terminate"] + (["partition-leader"] if self.net else ["kill-leader"])
            pause = (1.5, 3.0)
        while not self.stop.wait(rng.uniform(*pause)):
            action = rng.choice(actions)
            leader = self.leader()
            if action in ("kill-leader", "partition-leader") and leader is None:
                self.event("skip", -1, wanted=action, why="no leader")
                continue
            if action == "kill-leader":
                self.crash(self.nodes[leader], rng.uniform(1.0, 3.0), "kill-leader")
            elif action == "kill-follower":
                followers = [s for s in self.nodes if s.index != leader]
                self.crash(rng.choice(followers), rng.uniform(1.0, 3.0), "kill-follower")
            elif action == "terminate":
                slot = rng.choice(self.nodes)
                entry = self.event("terminate", slot.index, was_leader=slot.index == leader)
                slot.expected_down = True
                status = slot.process.terminate(timeout=20)
                entry["status"] = status
                if status != 0:
                    self.problem("processes", f"n{slot.index} exited {status} on SIGTERM (expected 0)")
                self.stop.wait(rng.uniform(1.0, 3.0))
                self.start_node(slot)
            elif action == "partition-leader":
                slot = self.nodes[leader]
                seconds = rng.uniform(3.0, 5.0)
                self.event("partition-leader", slot.index, seconds=round(seconds, 2))
                self.net.cut(slot.index)
                try:
                    self.stop.wait(seconds)
                finally:
                    self.net.heal(slot.index)
                    self.event("heal", slot.index)

    def crash(self, slot, down_s, action):
        self.event(action, slot.index, down_s=round(down_s, 2))
        slot.expected_down = True
        slot.process.kill()
        self.stop.wait(down_s)
        self.start_node(slot)

    def check_unexpected_exits(self):
        for slot in self.nodes:
            with self.cleanup_lock:  # start_node swaps process and expected_down under it
                process, expected = slot.process, slot.expected_down
                if process is None or process.alive() or expected:
                    continue
                slot.expected_down = True
            self.problem("processes", f"n{slot.index} exited by itself with status {process.process.returncode}"
                         f" (see {slot.log_path})")

    # ------------------------------------------------------------ the run

    def run(self):
        args = self.args
        key_rng = random.Random(f"{args.seed}/keys")
        keys = [str(uuid.UUID(int=key_rng.getrandbits(128), version=4)) for _ in range(args.keys)]
        clients = [threading.Thread(target=self.client, args=(i, keys), name=f"client-{i}", daemon=True)
                   for i in range(args.clients)]
        nemesis = threading.Thread(target=self.nemesis_guarded, name="nemesis", daemon=True)
        self.nemesis_thread = nemesis
        started = time.monotonic()
        log(f"workload: {args.clients} clients, {args.keys} keys, {args.duration} s")
        for thread in clients:
            thread.start()
        nemesis.start()
        while not self.stop.wait(min(1.0, max(0.0, started + args.duration - time.monotonic()))):
            self.check_unexpected_exits()
            if time.monotonic() >= started + args.duration:
                break
        self.stop.set()
        log("workload stopped; waiting for clients and the nemesis")
        join_deadline = time.monotonic() + 60
        for thread in clients + [nemesis]:
            thread.join(timeout=max(0.0, join_deadline - time.monotonic()))
            if thread.is_alive():
                self.problem("setup", f"{thread.name} still running 60 s after the stop")
        self.check_unexpected_exits()
        for slot in self.nodes:
            if slot.process is None or not slot.process.alive():
                log(f"restarting n{slot.index}")
                self.start_node(slot)
        if self.net:
            for slot in self.nodes:
                self.net.heal(slot.index)

        log(f"waiting up to {SETTLE_S} s for convergence")
        deadline = time.monotonic() + SETTLE_S
        while not self.converged() and time.monotonic() < deadline:
            time.sleep(0.3)
        if not self.converged():
            self.problem("convergence", f"the nodes' heartbeats did not agree on a leader with every node alive "
                         f"within {SETTLE_S} s")

        final = self.final_reads(keys)
        self.check_final_reads(keys, final)
        self.check_replicas(keys, final)
        self.check_unexpected_exits()
        verdicts = self.check_linearizability()
        self.write_outputs(verdicts, keys)

    def nemesis_guarded(self):
        try:
            self.nemesis()
        except Exception as error:  # a failed restart etc.: report it, let the workload finish
            self.problem("processes", f"nemesis stopped: {type(error).__name__}: {error}")

    def final_reads(self, keys):
        """{key: value} from a GET per key through the leader (recorded in the history too)."""
        cluster = kv.Cluster([s.address for s in self.nodes], OP_TIMEOUT_S, CONNECT_TIMEOUT_S)
        cluster.refresh()
        final = {}
        deadline = time.monotonic() + 60
        for n, key in enumerate(keys):
            if time.monotonic() > deadline:
                self.problem("final-reads", f"{len(keys) - n} keys not read: the final GETs took over 60 s")
                break
            while True:
                start = time.monotonic()
                outcome, result = cluster.get(key)
                end = time.monotonic()
                if outcome == kv.OK:
                    final[key] = result
                    with self.lock:
                        self.history.append({"key": key, "kind": "get", "value": result, "start": start, "end": end,
                                             "outcome": outcome, "client": "final"})
                    break
                if time.monotonic() > deadline:
                    self.problem("final-reads", f"{key}: no final GET answered ok within 60 s: {result}")
                    break
                time.sleep(0.2)
                cluster.refresh()
        cluster.close()
        return final

    def check_final_reads(self, keys, final):
        by_key = {key: [] for key in keys}
        for op in self.history:
            if op["kind"] != "get" and op["outcome"] != "fail":
                by_key[op["key"]].append(op)
        for key, writes in by_key.items():
            if key not in final:
                continue
            oks = [w for w in writes if w["outcome"] == kv.OK]

            def end(w):
                return w["end"] if w["outcome"] == kv.OK else math.inf
            # A write may be the last one unless an acknowledged write started after it ended.
            possible = [w for w in writes if not any(o["start"] > end(w) for o in oks)]
            allowed = {w["value"] if w["kind"] == "set" else None for w in possible}
            if not oks:
                allowed.add(None)
            if final[key] not in allowed:
                last = max(oks, key=lambda w: w["end"]) if oks else None
                self.problem("final-reads", f"{key}: the final GET returned {final[key]!r}; allowed: "
                             f"{sorted(map(repr, allowed))}; last acknowledged write: "
                             f"{last and (last['kind'], last['value'], round(last['end'], 3))}")

    def check_replicas(self, keys, final):
        deadline = time.monotonic() + SETTLE_S
        attempt = 0
        while True:
            attempt += 1
            problems = self.replica_problems(set(keys), final)
            if not problems:
                log(f"replicas converged (check {attempt})")
                return
            if time.monotonic() > deadline:
                for message in problems:
                    self.problem("convergence", message)
                return
            time.sleep(1.0)

    def replica_problems(self, keys, final):
        problems = []
        held = {}  # node index -> {key: version}
        for slot in self.nodes:
            node = kv.Node(slot.address, OP_TIMEOUT_S, CONNECT_TIMEOUT_S)
            versions, after = {}, ""
            while True:
                outcome, reply = node.replica_scan(after, 500)
                if outcome != kv.OK:
                    problems.append(f"n{slot.index}: KV_REPLICA_SCAN after {after!r}: {reply}")
                    break
                page_keys, page_versions = reply
                versions.update(zip(page_keys, page_versions))
                if len(page_keys) < 500:
                    break
                if page_keys[-1] <= after:
                    problems.append(f"n{slot.index}: KV_REPLICA_SCAN after {after!r} went backwards")
                    break
                after = page_keys[-1]
            node.close()
            held[slot.index] = versions
        if problems:
            return problems
        scanned = set().union(*(set(v) for v in held.values()))
        for key in sorted(scanned - keys)[:10]:
            problems.append(f"{key}: on nodes {[i for i in held if key in held[i]]} but no client used it")
        # The nodes' own records, read with KV_REPLICA_FETCH: it takes no epoch, so the checker neither
        # needs to know the current leader's nor can fence anyone by guessing one.
        records_on, unread = {}, []  # node index -> {key: (version, kind, value)}
        for slot in self.nodes:
            node = kv.Node(slot.address, OP_TIMEOUT_S, CONNECT_TIMEOUT_S)
            try:
                wanted = sorted(k for k in keys if held[slot.index].get(k, 0))
                records_on[slot.index] = {}
                for start in range(0, len(wanted), 1000):
                    outcome, reply = node.replica_fetch(wanted[start:start + 1000])
                    if outcome != kv.OK:
                        unread.append(f"n{slot.index}: KV_REPLICA_FETCH: {reply}")
                        break
                    records_on[slot.index].update(reply)
            finally:
                node.close()
        if unread:
            return problems + unread
        for key in sorted(keys):
            versions = {i: held[i].get(key, 0) for i in held}
            top = max(versions.values())
            if top == 0:
                if final.get(key) is not None:
                    problems.append(f"{key}: the final GET returned {final[key]!r} but no node's "
                                    "KV_REPLICA_SCAN lists the key")
                continue
            on_top = [i for i, v in versions.items() if v == top]
            if len(on_top) < self.args.rf:
                problems.append(f"{key}: highest version {fmt_version(top)} on {len(on_top)} node(s) "
                                f"{['n%d' % i for i in on_top]}, needs {self.args.rf}")
            records = {}
            for i, v in versions.items():
                if v == 0:
                    continue
                if key not in records_on[i]:
                    problems.append(f"{key}: n{i} lists it in KV_REPLICA_SCAN but KV_REPLICA_FETCH has no record")
                    continue
                records[i] = tuple(records_on[i][key])
            by_version = {}
            for i, (version, kind, value) in records.items():
                by_version.setdefault(version, {}).setdefault((kind, value), []).append(f"n{i}")
            for version, variants in by_version.items():
                if len(variants) > 1:
                    problems.append(f"{key}: different records at version {fmt_version(version)}: " +
                                    "; ".join(f"{show_record(r)} on {ns}" for r, ns in variants.items()))
            top_records = [records[i] for i in on_top if i in records]
            if top_records and key in final:
                value = record_value(top_records[0])
                if value != final[key]:
                    problems.append(f"{key}: highest record {show_record(top_records[0][1:])} at "
                                    f"{fmt_version(top)} but the final GET returned {final[key]!r}")
        return problems

    def check_linearizability(self):
        started = time.monotonic()
        verdicts = check_history(self.history, max_steps=self.args.checker_steps, time_budget_s=180)
        elapsed = time.monotonic() - started
        bad = {k: v for k, v in verdicts.items() if v.result != "ok"}
        log(f"linearizability: {len(verdicts)} keys in {elapsed:.1f} s, {len(bad)} not ok")
        for key, verdict in sorted(bad.items()):
            self.problem("linearizability", f"{key}: {verdict.result}: {verdict.explanation}")
        return verdicts

    def write_history(self):
        with self.lock:
            history = list(self.history)
        with open(os.path.join(self.out, "history.jsonl"), "w") as out:
            for index, op in enumerate(history):
                out.write(json.dumps(dict(op, id=index, value=jsonable(op["value"]))) + "\n")
        self.history_written = True

    def write_outputs(self, verdicts, keys):
        self.write_history()
        counts = {o: sum(1 for op in self.history if op["outcome"] == o) for o in ("ok", "fail", "unknown")}
        by_kind = {k: sum(1 for op in self.history if op["kind"] == k) for k in ("get", "set", "delete")}
        summary = {
            "seed": self.args.seed,
            "nodes": self.args.nodes, "replication_factor": self.args.rf, "duration_s": self.args.duration,
            "clients": self.args.clients, "keys": len(keys), "partitions": self.net is not None,
            "ops": len(self.history), "outcomes": counts, "kinds": by_kind,
            "kills": sum(1 for e in self.events if e["action"] in ("kill-leader", "kill-follower")),
            "leader_kills": sum(1 for e in self.events if e["action"] == "kill-leader"),
            "terminations": sum(1 for e in self.events if e["action"] == "terminate"),
            "partition_count": sum(1 for e in self.events if e["action"] == "partition-leader"),
            "write_unavailability_after_leader_kill_s": self.unavailability(("kill-leader",)),
            "write_unavailability_after_leader_partition_s": self.unavailability(("partition-leader",)),
            "write_unavailability_after_leader_sigterm_s": self.unavailability(("terminate",), leader_only=True),
            "verdicts": {r: sum(1 for v in verdicts.values() if v.result == r) for r in ("ok", "illegal", "unknown")},
            "problems": self.problems,
            "events": [dict(e, time=round(e["time"], 3)) for e in self.events],
        }
        with open(os.path.join(self.out, "summary.json"), "w") as out:
            json.dump(summary, out, indent=2, default=str)
        self.summary = summary

    def unavailability(self, actions, leader_only=False):
        """The longest time from one of these events to the end of the first write sent after it that succeeded."""
        writes = [(op["start"], op["end"]) for op in self.history
                  if op["kind"] != "get" and op["outcome"] == kv.OK and op["client"] != "final"]
        worst = None
        for e in self.events:
            if e["action"] in actions and (not leader_only or e.get("was_leader")):
                nxt = min((end for start, end in writes if start >= e["time"]), default=None)
                gap = None if nxt is None else round(nxt - e["time"], 3)
                e["next_write_after_s"] = gap
                if gap is not None and (worst is None or gap > worst):
                    worst = gap
        return worst


def write_doc(args, summary, failed):
    """The run's figures as docs/cluster-robustness.md (make chaos)."""
    outcomes, kinds = summary["outcomes"], summary["kinds"]
    gaps = [e.get("next_write_after_s") for e in summary["events"] if e["action"] == "kill-leader"]
    gaps = sorted(g for g in gaps if g is not None)
    median = gaps[len(gaps) // 2] if gaps else None
    lines = [
        "# Key-value cluster robustness (make chaos)",
        "",
        f"Written by `make chaos` on {time.strftime('%Y-%m-%d')}: `Tests/Cluster/kv_history_test.py --chaos`, "
        f"seed {args.seed}. etcd and {args.nodes} `iproto-kvd` nodes (replication factor {args.rf}, "
        f"{lease_flag(args)}) ran as real processes{' in network namespaces' if summary['partitions'] else ''}; "
        f"{args.clients} clients did GET/SET/DELETE on {summary['keys']} keys for {args.duration:.0f} s "
        "while the nemesis killed, stopped and cut off nodes. Every operation was recorded with its outcome "
        "and checked: linearizability per key (Tests/lib/linearizability.py), the final reads against every "
        "acknowledged write, and the replicas' convergence (docs/cluster.md, \"Guarantees\").",
        "",
        f"**Result: {'PASS' if not failed else 'FAIL: ' + ', '.join(failed)}.** "
        f"Verdicts per key: {summary['verdicts']['ok']} linearizable, {summary['verdicts']['illegal']} not, "
        f"{summary['verdicts']['unknown']} undecided.",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| operations | {summary['ops']:,} (GET {kinds['get']:,}, SET {kinds['set']:,}, DELETE {kinds['delete']:,}) |",
        f"| outcomes ok / failed / unknown | {outcomes['ok']:,} / {outcomes['fail']:,} / {outcomes['unknown']:,} |",
        f"| kill -9 of the leader | {summary['leader_kills']} |",
        f"| kill -9 of a follower | {summary['kills'] - summary['leader_kills']} |",
        f"| SIGTERM of a node | {summary['terminations']} |",
        f"| leader cut off (network namespace) | {summary['partition_count']} |",
        f"| writes succeed again after a leader kill, worst | {summary['write_unavailability_after_leader_kill_s']} s |",
        f"| the same, median | {median} s |",
        f"| after the leader was cut off, worst | {summary['write_unavailability_after_leader_partition_s']} s |",
        f"| after a leader SIGTERM (resigns), worst | {summary['write_unavailability_after_leader_sigterm_s']} s |",
        "",
        "A failed operation is one the cluster refused (no leader yet, too few replicas reachable); an unknown "
        "one timed out or was answered `kv_outcome_unknown`, and the checker lets it take effect or not.",
        "",
        "How to read the times: each is from the fault to the end of the first write, by any client, that "
        f"succeeded after it. After a kill the old lease must expire ({lease_seconds(args)} s) and a follower win the election. A cut-off "
        "leader is also unreachable for the clients, whose calls to it wait out their 3 s timeout before they "
        "look for the new leader, so that figure includes the client's timeout. The clients are paced "
        f"(`--ops-per-key {args.ops_per_key}`), which keeps every key's history small enough for an exhaustive "
        "linearizability search; the faults, not the load, are what this run varies.",
        "",
    ]
    with open(args.doc, "w") as out:
        out.write("\n".join(lines))


def lease_seconds(args):
    return args.lease_ttl if args.lease_ttl is not None else 2


def lease_flag(args):
    return f"`--lease-ttl {args.lease_ttl}`" if args.lease_ttl is not None else "the default lease, 2 s"


def fmt_version(version):
    return f"{version >> 32}.{version & 0xFFFFFFFF}"


def record_value(record):
    version, kind, value = record
    if kind == 2:
        return None
    if kind == 0 and isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def show_record(record):
    kind, value = record[-2], record[-1]
    return "tombstone" if kind == 2 else f"{['str', 'bin'][kind] if kind in (0, 1) else kind} {value!r}"


def jsonable(value):
    if isinstance(value, (bytes, bytearray)):
        return {"bin_hex": bytes(value).hex()}
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bin_dir")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--rf", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--ops-per-key", type=int, default=50, help="paces the clients to about this many ops per key")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--partitions", action="store_true")
    parser.add_argument("--lease-ttl", type=int, default=None, help="the nodes' --lease-ttl (default: theirs, 2 s)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--checker-steps", type=int, default=1_000_000, help="search budget per key")
    parser.add_argument("--chaos", action="store_true", help="faults more often, half of them leader kills")
    parser.add_argument("--doc", default=None, help="also write the figures to this Markdown file")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    if not os.access(os.path.join(args.bin_dir, "iproto-kvd"), os.X_OK):
        print(f"no executable iproto-kvd in {args.bin_dir}", file=sys.stderr)
        return 2
    if args.out is None:
        args.out = os.path.join("/tmp", f"kv-history-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    args.out = os.path.abspath(args.out)
    if os.path.isdir(args.out) and os.listdir(args.out):
        print(f"{args.out} is not empty: the nodes' data dirs go there, so give a fresh --out", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    print(f"seed {args.seed} (rerun with --seed {args.seed}); output in {args.out}", flush=True)

    run = Run(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:  # nohup wants it ignored
        signal.signal(signal.SIGHUP, on_signal)

    # Hard bound on the whole run: everything after the workload has its own limits,
    # this catches what they do not.
    limit_s = args.duration + 300 + 180 + 60

    def hard_stop():
        print(f"FAIL: the run took over {limit_s:.0f} s; cleaning up and exiting", file=sys.stderr, flush=True)
        run.cleanup()
        os._exit(3)
    watchdog = threading.Timer(limit_s, hard_stop)
    watchdog.daemon = True
    watchdog.start()
    try:
        try:
            run.setup()
        except (RuntimeError, OSError) as error:  # etcd, namespaces, a node: all say what failed
            raise SetupError(f"{type(error).__name__}: {error}") from error
        run.run()
    except SetupError as error:
        print(f"SETUP FAILED: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        print(f"interrupted ({str(error) or 'Ctrl-C'}); cleaning up", file=sys.stderr)
        return 130
    finally:
        watchdog.cancel()
        run.cleanup()
        if run.history and not run.history_written:
            run.write_history()
            print(f"the history so far is in {args.out}/history.jsonl", file=sys.stderr)

    summary = run.summary
    print(f"ops {summary['ops']} ({summary['outcomes']}), kills {summary['kills']} "
          f"(leader {summary['leader_kills']}), SIGTERMs {summary['terminations']}, "
          f"partitions {summary['partition_count']}; write unavailability after leader kill "
          f"{summary['write_unavailability_after_leader_kill_s']} s (max); verdicts {summary['verdicts']}")
    failed = {check: problems for check, problems in run.problems.items() if problems}
    if args.doc:
        write_doc(args, summary, failed)
    if not failed:
        print(f"PASS (seed {args.seed}); history and summary in {args.out}")
        return 0
    print(f"FAIL (seed {args.seed}); history in {args.out}/history.jsonl, logs in {args.out}/logs")
    for check, problems in failed.items():
        print(f"  {check}: {len(problems)} problem(s)")
        for message in problems[:10]:
            print(f"    - {message}")
        if len(problems) > 10:
            print(f"    ... {len(problems) - 10} more in summary.json")
    return 1


if __name__ == "__main__":
    sys.exit(main())
