"""A linearizability checker for a key-value store whose keys are independent registers.

The history is partitioned by key (a history is linearizable iff each key's is,
since the registers are independent), and each key is searched the way
Wing & Gong describe and Porcupine implements (anishathalye/porcupine: checker.go):
call and return events sorted by time in a linked list; at each step try to
linearize a call that no pending return precedes; memoize (set of linearized
ops, register value) so no state is explored twice; backtrack on a return.

An op is a mapping (history.jsonl uses the same fields):
    key      the register
    kind     "set" (write value), "delete" (write None), "get" (read -> value; absent = None)
    value    the value written or read (str or bytes), None for delete / absent
    start    monotonic float, before the request was sent
    end      monotonic float, after the answer came (or the client gave up)
    outcome  "ok"      happened, between start and end
             "fail"    surely did not happen: dropped
             "unknown" a write that may have happened at any time after start, or never:
                       its end is taken as infinity and it need not be linearized.
                       A read that is not "ok" has no effect and is dropped.
    id       optional; shown in explanations (default: the op's index in the input)

The initial value of every register is None. Verdicts per key: "ok", "illegal"
(with a short explanation naming the ops involved), or "unknown" when the search
went over its step budget.
"""
import math
from collections import defaultdict

OK = "ok"
ILLEGAL = "illegal"
UNKNOWN = "unknown"

INFINITY = math.inf


class Verdict:
    __slots__ = ("result", "explanation", "ops", "steps")

    def __init__(self, result, explanation=None, ops=0, steps=0):
        self.result = result
        self.explanation = explanation
        self.ops = ops
        self.steps = steps

    def __repr__(self):
        return f"Verdict({self.result!r}, ops={self.ops}, steps={self.steps})"


class _Op:
    """One op as the search sees it."""
    __slots__ = ("ident", "write", "value", "start", "end", "required", "source")

    def __init__(self, ident, write, value, start, end, required, source):
        self.ident = ident
        self.write = write
        self.value = value
        self.start = start
        self.end = end
        self.required = required  # must be linearized (ok ops); unknown writes need not be
        self.source = source


def describe(op):
    """One op in a line, e.g. `#12 SET 'c3-7' [10.001, 10.004] ok` (times as recorded)."""
    ident = op.get("id")
    kind = op["kind"].upper()
    end = op.get("end")
    end_text = "inf" if end is None or end == INFINITY else f"{end:.3f}"
    if kind == "GET":
        what = f"GET -> {op.get('value')!r}"
    elif kind == "DELETE":
        what = "DELETE"
    else:
        what = f"SET {op.get('value')!r}"
    return f"#{ident} {what} [{op['start']:.3f}, {end_text}] {op['outcome']}"


def _prepare(ops):
    """The ops of one key that the search needs, as _Op, and the ones dropped as pointless.

    Failed ops and reads that were not answered are dropped. An unknown write whose
    value no ok read returned is dropped too: in any legal order containing it,
    removing it leaves every read's value unchanged (no read can sit between it and
    the next write, since none returned its value), and it imposes no real-time
    constraint of its own because it need not be linearized at all.
    """
    read_values = set()
    for op in ops:
        if op["kind"] == "get" and op["outcome"] == OK:
            read_values.add(_hashable(op.get("value")))
    prepared = []
    for op in ops:
        kind, outcome = op["kind"], op["outcome"]
        if kind not in ("get", "set", "delete"):
            raise ValueError(f"unknown op kind {kind!r} in {op!r}")
        if outcome not in (OK, "fail", UNKNOWN):
            raise ValueError(f"unknown outcome {outcome!r} in {op!r}")
        if outcome == "fail":
            continue
        if kind == "get":
            if outcome != OK:
                continue
            prepared.append(_Op(op["id"], False, _hashable(op.get("value")), op["start"], op["end"], True, op))
            continue
        value = None if kind == "delete" else _hashable(op.get("value"))
        if outcome == UNKNOWN:
            if value not in read_values:
                continue
            prepared.append(_Op(op["id"], True, value, op["start"], INFINITY, False, op))
        else:
            prepared.append(_Op(op["id"], True, value, op["start"], op["end"], True, op))
    return prepared


def _hashable(value):
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def check_register(ops, max_steps=2_000_000):
    """The verdict for the ops of one register (all with the same key)."""
    ops = [dict(op, id=op.get("id", index)) for index, op in enumerate(ops)]
    prepared = _prepare(ops)
    n = len(prepared)

    # A read of a value no write that may have happened wrote: say so plainly.
    written = {op.value for op in prepared if op.write}
    for op in prepared:
        if not op.write and op.value is not None and op.value not in written:
            writers = [describe(o) for o in ops if o["kind"] == "set" and _hashable(o.get("value")) == op.value]
            why = f"{describe(op.source)} returned a value that no write which may have taken effect wrote"
            if writers:
                why += "; it was written only by: " + ", ".join(writers)
            return Verdict(ILLEGAL, why, n, 0)

    # Events: node 0 is the head, 2n+1 the tail; node 2i+1 is op i's call, 2i+2 its return.
    events = []
    for i, op in enumerate(prepared):
        events.append((op.start, 0, i))
        events.append((op.end, 1, i))
    events.sort()  # at equal times calls come first: touching ops count as concurrent
    size = 2 * n + 2
    head, tail = 0, size - 1
    nxt = [0] * size
    prv = [0] * size
    is_call = [False] * size
    op_of = [0] * size
    return_of = [0] * size
    order = [head]
    for time, kind, i in events:
        node = 2 * i + 1 + kind
        is_call[node] = kind == 0
        op_of[node] = i
        order.append(node)
    order.append(tail)
    for a, b in zip(order, order[1:]):
        nxt[a] = b
        prv[b] = a
    for i in range(n):
        return_of[2 * i + 1] = 2 * i + 2

    required_left = sum(1 for op in prepared if op.required)
    state = None
    linearized = 0
    calls = []  # (call node, state before it)
    cache = set()
    steps = 0
    best_depth = -1
    best = None  # (linearized op indices in order, state, stuck op index)
    entry = nxt[head]
    while required_left:
        steps += 1
        if steps > max_steps:
            return Verdict(UNKNOWN, f"gave up after {max_steps} search steps ({n} ops)", n, steps)
        if is_call[entry]:
            i = op_of[entry]
            op = prepared[i]
            if op.write or op.value == state:
                new_state = op.value if op.write else state
                new_linearized = linearized | (1 << i)
                memo = (new_linearized, new_state)
                if memo not in cache:
                    cache.add(memo)
                    calls.append((entry, state))
                    state = new_state
                    linearized = new_linearized
                    if op.required:
                        required_left -= 1
                    ret = return_of[entry]
                    nxt[prv[entry]] = nxt[entry]
                    prv[nxt[entry]] = prv[entry]
                    nxt[prv[ret]] = nxt[ret]
                    prv[nxt[ret]] = prv[ret]
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
        else:
            if len(calls) > best_depth:
                best_depth = len(calls)
                best = ([op_of[c] for c, _ in calls], state, op_of[entry])
            if not calls:
                break
            entry, state = calls.pop()
            i = op_of[entry]
            linearized &= ~(1 << i)
            if prepared[i].required:
                required_left += 1
            ret = return_of[entry]
            nxt[prv[ret]] = ret
            prv[nxt[ret]] = ret
            nxt[prv[entry]] = entry
            prv[nxt[entry]] = entry
            entry = nxt[entry]
    else:
        return Verdict(OK, None, n, steps)
    return Verdict(ILLEGAL, _explain(prepared, best), n, steps)


def _diagnose(prepared, read):
    """A one-line reason a read cannot be placed, when a simple one exists, else None."""
    writers = [op for op in prepared if op.write and op.value == read.value]
    what = "absent" if read.value is None else repr(read.value)
    if read.value is not None and writers and all(w.start > read.end for w in writers):
        return (f"{describe(read.source)} saw {what}, written only by "
                f"{', '.join(describe(w.source) for w in writers)}, which started after the read returned")
    # Writes that surely came after every write of the value read, and before the read began.
    latest_writer_end = max((w.end for w in writers), default=-INFINITY)
    if read.value is None and not writers:
        latest_writer_end = -INFINITY  # the initial state
    overwriters = [op for op in prepared if op.write and op.required and op.value != read.value
                   and op.start > latest_writer_end and op.end < read.start]
    if overwriters:
        source = "the initial state" if read.value is None and not writers else \
            ", ".join(describe(w.source) for w in writers[-3:])
        return (f"{describe(read.source)} saw {what} (from {source}), but {describe(overwriters[-1].source)} "
                f"had replaced it: it started after that and finished before the read began")
    return None


def _explain(prepared, best):
    order, state, stuck = best
    stuck_op = prepared[stuck]
    lines = []
    if not stuck_op.write:
        diagnosis = _diagnose(prepared, stuck_op)
        if diagnosis:
            lines.append(diagnosis)
    if order:
        shown = order[-6:]
        prefix = "" if len(order) == len(shown) else f"... ({len(order) - len(shown)} earlier ops), "
        lines.append(f"longest legal order found: {prefix}" + ", ".join(describe(prepared[i].source) for i in shown))
    else:
        lines.append("no op can be linearized first")
    lines.append(f"the register then holds {state!r}")
    if stuck_op.write:
        lines.append(f"and {describe(stuck_op.source)} must take effect before it returned, but every order that "
                     "puts it there breaks a later read")
    else:
        lines.append(f"but {describe(stuck_op.source)} must take effect before it returned")
    # Ops that overlap the stuck one, or wrote the value it read: the likely suspects.
    related = []
    for i, op in enumerate(prepared):
        if i == stuck or i in order[-6:]:
            continue
        overlaps = op.start <= stuck_op.end and stuck_op.start <= op.end
        wrote_it = op.write and not stuck_op.write and op.value == stuck_op.value
        if overlaps or wrote_it:
            related.append(describe(op.source))
    if related:
        lines.append("related ops: " + ", ".join(related[:8]) + (" ..." if len(related) > 8 else ""))
    return "; ".join(lines)


def partition(ops):
    by_key = defaultdict(list)
    for index, op in enumerate(ops):
        by_key[op["key"]].append(dict(op, id=op.get("id", index)))
    return by_key


def check_history(ops, max_steps=2_000_000, time_budget_s=None):
    """{key: Verdict} for a whole history. With time_budget_s, keys not reached
    within that many seconds get an "unknown" verdict instead of being searched."""
    import time
    deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
    verdicts = {}
    for key, key_ops in partition(ops).items():
        if deadline is not None and time.monotonic() > deadline:
            verdicts[key] = Verdict(UNKNOWN, f"not checked: the {time_budget_s} s budget was spent", len(key_ops))
        else:
            verdicts[key] = check_register(key_ops, max_steps)
    return verdicts
