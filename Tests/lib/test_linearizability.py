"""Tests of the linearizability checker on crafted histories.

    cd Tests/lib && python3 -m unittest test_linearizability -v

Each illegal history is also shown legal once the one op that breaks it is
changed or removed, so a checker that answered "illegal" to everything (or
"ok" to everything) fails here.
"""
import random
import time
import unittest

from linearizability import ILLEGAL, INFINITY, OK, check_history, check_register

KEY = "k"


def op(kind, value, start, end, outcome="ok", key=KEY):
    return {"key": key, "kind": kind, "value": value, "start": start, "end": end, "outcome": outcome}


def w(value, start, end, outcome="ok", key=KEY):
    return op("set", value, start, end, outcome, key)


def d(start, end, outcome="ok", key=KEY):
    return op("delete", None, start, end, outcome, key)


def r(value, start, end, outcome="ok", key=KEY):
    return op("get", value, start, end, outcome, key)


class CraftedHistories(unittest.TestCase):
    def assertLegal(self, ops):
        verdict = check_register(ops)
        self.assertEqual(verdict.result, OK, verdict.explanation)

    def assertIllegal(self, ops):
        verdict = check_register(ops)
        self.assertEqual(verdict.result, ILLEGAL)
        self.assertTrue(verdict.explanation)
        return verdict.explanation

    def test_empty_and_initial_state(self):
        self.assertLegal([])
        self.assertLegal([r(None, 0, 1)])
        self.assertIllegal([r("a", 0, 1)])

    def test_sequential(self):
        self.assertLegal([w("a", 0, 1), r("a", 2, 3), w("b", 4, 5), r("b", 6, 7), d(8, 9), r(None, 10, 11)])

    def test_concurrent_reads_see_either_side_of_a_write(self):
        # A write of b overlaps two reads: one saw a, the other b; both orders exist.
        self.assertLegal([w("a", 0, 1), w("b", 2, 6), r("a", 3, 4), r("b", 3.5, 5)])
        # The reads may go either way, as long as they are not contradictory in real time.
        self.assertLegal([w("a", 0, 1), w("b", 2, 6), r("b", 3, 4), r("b", 4.5, 5)])

    def test_new_then_old_value_in_real_time_order_is_illegal(self):
        # Both reads overlap the write, but the first saw b and the later one (starting
        # after the first returned) saw a again: a register cannot go back.
        history = [w("a", 0, 1), w("b", 2, 10), r("b", 3, 4), r("a", 5, 6)]
        self.assertIllegal(history)
        self.assertLegal(history[:3] + [r("b", 5, 6)])

    def test_concurrent_writes_either_order(self):
        self.assertLegal([w("a", 0, 3), w("b", 1, 4), r("a", 5, 6), r("a", 7, 8)])
        self.assertLegal([w("a", 0, 3), w("b", 1, 4), r("b", 5, 6)])
        # ...but once the order is chosen by a read, it stays.
        self.assertIllegal([w("a", 0, 3), w("b", 1, 4), r("b", 5, 6), r("a", 7, 8)])

    def test_stale_read_after_acknowledged_write(self):
        history = [w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)]
        explanation = self.assertIllegal(history)
        self.assertIn("GET -> 'a'", explanation)
        self.assertIn("but #1 SET 'b' [2.000, 3.000] ok had replaced it", explanation)
        self.assertLegal([w("a", 0, 1), w("b", 2, 3), r("b", 4, 5)])
        # The same read overlapping the second write is fine.
        self.assertLegal([w("a", 0, 1), w("b", 2, 4.5), r("a", 4, 5)])

    def test_lost_acknowledged_write(self):
        # b was acknowledged, then a read finds nothing (the initial state) — lost.
        self.assertIllegal([w("b", 0, 1), r(None, 2, 3)])
        # Or finds the value before it.
        self.assertIllegal([w("a", 0, 1), w("b", 2, 3), r("b", 4, 5), r("a", 6, 7)])
        self.assertLegal([w("a", 0, 1), w("b", 2, 3), r("b", 4, 5), r("b", 6, 7)])

    def test_read_of_failed_write(self):
        history = [w("a", 0, 1), w("b", 2, 3, "fail"), r("b", 4, 5)]
        explanation = self.assertIllegal(history)
        self.assertIn("no write which may have taken effect", explanation)
        self.assertIn("SET 'b'", explanation)
        self.assertLegal(history[:2] + [r("a", 4, 5)])

    def test_read_of_unknown_write(self):
        # A timed-out write may take effect late, even after later reads saw the old value...
        self.assertLegal([w("a", 0, 1), w("b", 2, 3, "unknown"), r("a", 4, 5), r("b", 6, 7)])
        # ...or never.
        self.assertLegal([w("a", 0, 1), w("b", 2, 3, "unknown"), r("a", 4, 5), r("a", 100, 101)])
        # But not before it was sent.
        explanation = self.assertIllegal([w("a", 0, 1), r("b", 2, 3), w("b", 4, 5, "unknown")])
        self.assertIn("started after the read returned", explanation)
        # And once seen, it has taken effect: the old value cannot come back.
        self.assertIllegal([w("a", 0, 1), w("b", 2, 3, "unknown"), r("b", 4, 5), r("a", 6, 7)])

    def test_unknown_write_end_time_is_ignored(self):
        # The recorded end of an unknown write (when the client gave up) is no bound.
        self.assertLegal([w("a", 0, 1, "unknown"), w("b", 2, 3), r("a", 4, 5)])
        self.assertIllegal([w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)])

    def test_value_comes_back_after_delete(self):
        history = [w("a", 0, 1), d(2, 3), r(None, 4, 5), r("a", 6, 7)]
        self.assertIllegal(history)
        self.assertIllegal([w("a", 0, 1), d(2, 3), r("a", 4, 5)])
        self.assertLegal(history[:3])
        # A delete that may not have happened does not make the old value illegal.
        self.assertLegal([w("a", 0, 1), d(2, 3, "unknown"), r("a", 4, 5)])
        self.assertLegal([w("a", 0, 1), d(2, 3, "fail"), r("a", 4, 5)])
        # An unknown delete seen once stays seen.
        self.assertIllegal([w("a", 0, 1), d(2, 3, "unknown"), r(None, 4, 5), r("a", 6, 7)])

    def test_failed_and_unanswered_reads_are_dropped(self):
        self.assertLegal([w("a", 0, 1), r("zzz", 2, 3, "fail"), r("zzz", 2, 3, "unknown"), r("a", 4, 5)])

    def test_keys_are_independent(self):
        ops = [w("a", 0, 1, key="x"), r("a", 2, 3, key="x"), w("b", 0, 1, key="y"), r(None, 2, 3, key="y"),
               r("a", 2, 3, key="z")]
        verdicts = check_history(ops)
        self.assertEqual(verdicts["x"].result, OK)
        self.assertEqual(verdicts["y"].result, ILLEGAL)
        self.assertEqual(verdicts["z"].result, ILLEGAL)

    def test_explanation_names_the_ops_by_id(self):
        ops = [w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)]
        ops = [dict(o, id=100 + i) for i, o in enumerate(ops)]
        explanation = check_register(ops).explanation
        self.assertIn("#102", explanation)

    def test_many_concurrent_unknown_writes(self):
        # 20 unknown writes all in flight, reads seeing some of them: legal iff the
        # reads' order is consistent with some order of the writes.
        ops = [w(f"v{i}", i * 0.1, i * 0.1 + 0.05, "unknown") for i in range(20)]
        ops += [r("v3", 10, 11), r("v17", 12, 13), r("v5", 14, 15)]
        self.assertLegal(ops)
        ops.append(r("v17", 16, 17))  # v17 again after v5 was seen: v17 would have to be written twice
        self.assertIllegal(ops)


def simulated_history(rng, key=KEY, clients=6, ops_per_client=10, unknown=0.1, failed=0.05):
    """A history of an atomic register: each op takes effect at a random point
    inside its interval, in that order. Unknown writes take effect or not; their
    end is when the client gave up. Values are unique."""
    planned = []
    for client in range(clients):
        t = rng.uniform(0, 1)
        for n in range(ops_per_client):
            start = t
            end = start + rng.expovariate(1 / 0.5)
            roll = rng.random()
            kind = "get" if roll < 0.5 else "set" if roll < 0.9 else "delete"
            outcome = "ok"
            if kind != "get":
                roll = rng.random()
                outcome = "unknown" if roll < unknown else "fail" if roll < unknown + failed else "ok"
            point = rng.uniform(start, end)
            if outcome == "unknown":
                point = rng.choice([None, rng.uniform(start, end + 5)])  # may land after the client gave up
            if outcome == "fail":
                point = None
            value = f"c{client}-{n}" if kind == "set" else None
            planned.append({"key": key, "kind": kind, "value": value, "start": start, "end": end,
                            "outcome": outcome, "point": point})
            t = end + rng.expovariate(1 / 0.2)
    state = None
    for o in sorted((o for o in planned if o["point"] is not None), key=lambda o: o["point"]):
        if o["kind"] == "get":
            o["value"] = state
        elif o["kind"] == "set":
            state = o["value"]
        else:
            state = None
    for o in planned:
        del o["point"]
    return planned


class SimulatedHistories(unittest.TestCase):
    def test_random_legal_histories(self):
        rng = random.Random(1)
        for round_ in range(200):
            ops = simulated_history(rng)
            verdict = check_register(ops)
            self.assertEqual(verdict.result, OK, f"round {round_}: {verdict.explanation}")

    def test_long_random_legal_history(self):
        rng = random.Random(2)
        ops = simulated_history(rng, clients=8, ops_per_client=60)
        self.assertEqual(check_register(ops).result, OK)

    def test_one_corrupted_read_is_found(self):
        """A read changed to a value that was overwritten before the read started
        (stale), or written only after it returned (from the future): illegal."""
        rng = random.Random(3)
        stale = future = 0
        for round_ in range(150):
            ops = simulated_history(rng, clients=6, ops_per_client=20)
            self.assertEqual(check_register(ops).result, OK)
            oks = [o for o in ops if o["outcome"] == "ok"]
            reads = [o for o in oks if o["kind"] == "get"]
            writes = [o for o in oks if o["kind"] != "get"]
            rng.shuffle(reads)
            for read in reads:
                # A set that ended before another write started that ended before the read started.
                latest_start = max((b["start"] for b in writes if b["end"] < read["start"]), default=-1)
                old = [a for a in writes if a["kind"] == "set" and a["value"] != read["value"] and
                       a["end"] < latest_start]
                # A set that started after the read returned.
                new = [a for a in writes if a["kind"] == "set" and a["start"] > read["end"]]
                choice = rng.choice([c for c in (old, new) if c] or [[]])
                if not choice:
                    continue
                # Only unique values: no other write (of any outcome) may write it again.
                source = rng.choice(choice)
                original = read["value"]
                read["value"] = source["value"]
                verdict = check_register(ops)
                self.assertEqual(verdict.result, ILLEGAL, f"round {round_}: corrupted read not found")
                read["value"] = original
                self.assertEqual(check_register(ops).result, OK)
                if choice is old:
                    stale += 1
                else:
                    future += 1
                break
        self.assertGreater(stale, 30)
        self.assertGreater(future, 30)

    def test_speed_300_keys_50_ops(self):
        rng = random.Random(4)
        ops = []
        for k in range(300):
            ops += simulated_history(rng, key=f"key{k}", clients=5, ops_per_client=10)
        started = time.monotonic()
        verdicts = check_history(ops)
        elapsed = time.monotonic() - started
        self.assertEqual(len(verdicts), 300)
        self.assertTrue(all(v.result == OK for v in verdicts.values()))
        self.assertLess(elapsed, 10, f"{elapsed:.1f} s for {len(ops)} ops")
        # One bad read among them is found, and only its key is illegal.
        read = next(o for o in ops if o["key"] == "key150" and o["kind"] == "get" and o["outcome"] == "ok")
        read["value"] = "never-written"
        verdicts = check_history(ops)
        self.assertEqual([k for k, v in verdicts.items() if v.result != OK], ["key150"])
        # With no time at all, every key is "unknown", never "ok".
        self.assertEqual({v.result for v in check_history(ops, time_budget_s=-1).values()}, {"unknown"})


if __name__ == "__main__":
    unittest.main()
