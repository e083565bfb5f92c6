#!/usr/bin/env python3
"""Acknowledged writes survive a power cut.

    Tests/PowerCut/powercut_test.py PATH_TO_IPROTOD [--cycles N] [--fsync batch,always]
                                    [--expect-loss never] [--seed S]

iprotod runs under the power-cut shim (powercut.c), which records what its
data directory would hold on a disk that lost power: each file as of its last
fdatasync or fsync, the directory's entries as of its last fsync. The crash
test's writers and state switcher (Tests/lib/workload.py) load it; after a
random 0.2-1.2 s it gets SIGKILL, the data directory is rewritten to that
durable view (every unsynced byte, create, rename and unlink forgotten), and
iprotod starts again on it, with snapshots every 0.2 s so that cuts also land
during snapshots. Every slot must then hold its last acknowledged value (or a
later one that was sent) and the state must be the last acknowledged one.
Each policy in --fsync gets N such cycles and then a graceful stop followed
by a cut and one more check.

Each policy in --expect-loss must fail that check: one cycle at a time, up to
three, until acknowledged writes are missing or the restart refuses the
directory. That shows the shim does drop what was never synced (kill -9 alone
keeps the page cache, so the crash test cannot see a missing sync).

Prints the figures and "passed", or the first problems, and exits 1 on any.
"""
import argparse
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import powercut  # noqa: E402
from iproto import Server  # noqa: E402
from workload import CANNOT_PERSIST, READ_ONLY, Model, check, load_then_kill  # noqa: E402

NEGATIVE_ATTEMPTS = 3


class Run:
    """One policy's data directory, model and figures."""

    def __init__(self, iprotod, shim, work, fsync):
        self.fsync = fsync
        self.shim = shim
        self.work = tempfile.mkdtemp(prefix=f"{fsync}-", dir=work)
        self.data = os.path.join(self.work, "data")
        os.mkdir(self.data)
        self.log = os.path.join(self.work, "iprotod.log")
        self.argv = [iprotod, "--listen", "127.0.0.1:0", "--metrics-listen", "", "--rate-limit", "0", "--rate-limit-per-ip", "0",
                     "--data-dir", self.data, "--fsync", fsync, "--snapshot-interval", "0.2"]
        self.model = Model()
        self.state = None
        self.cuts = 0
        self.bytes_dropped = 0
        self.files_dropped = 0
        self.entries_restored = 0

    def start(self):
        """iprotod under the shim, recording into a fresh state directory."""
        if self.state:
            shutil.rmtree(self.state)
        self.state = powercut.fresh_state(self.work)
        return Server(self.argv, log=self.log, env=powercut.env(self.shim, self.data, state=self.state))

    def cut(self):
        """The power cut, once iprotod is dead."""
        taken = powercut.apply_cut(self.data, self.state)
        self.cuts += 1
        self.bytes_dropped += taken["bytes"]
        self.files_dropped += len(taken["files"])
        self.entries_restored += len(taken["restored"])

    def cycle(self):
        """Load, SIGKILL, cut, restart, check: the problems found."""
        problems = load_then_kill(self.server, self.model, random.uniform(0.2, 1.2))
        self.cut()
        self.server = self.start()
        return problems + check(self.server.port, self.model)

    def log_tail(self, lines=20):
        with open(self.log, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def close(self):
        """Kills iprotod if a failure left it running."""
        server = getattr(self, "server", None)
        if server and server.process.poll() is None:
            server.kill()

    def figures(self):
        m = self.model
        return (f"{self.cuts} cuts, {m.acked_writes} acknowledged writes over {len(m.sent)} slots, "
                f"{m.switches} acknowledged state switches, {m.slot_checks} slot checks; the cuts dropped "
                f"{self.bytes_dropped} bytes, {self.files_dropped} files, and undid {self.entries_restored} "
                f"renames or removals")


def must_keep(run, cycles):
    problems = []
    run.server = run.start()
    for number in range(cycles):
        problems += [f"after cut {number + 1}: {problem}" for problem in run.cycle()]
        if problems:
            run.server.kill()
            return problems
    status, _ = run.server.stop()
    if status != 0:
        problems.append(f"graceful stop exited {status}")
    run.cut()
    run.server = run.start()
    problems += [f"after the graceful stop and a cut: {problem}" for problem in check(run.server.port, run.model)]
    run.server.kill()
    return problems


def must_lose(run):
    """The first attempt's findings (lost writes, or a refused start) as a
    sentence, or None when no attempt lost anything."""
    run.server = run.start()
    for _ in range(NEGATIVE_ATTEMPTS):
        try:
            found = run.cycle()
        except RuntimeError as error:  # iprotod refused the directory the cut left
            return f"the restart failed ({error}; iprotod said: {run.log_tail(1).strip()})"
        if found:
            run.server.kill()
            return f"{len(found)} problems, the first: {found[0]}"
    run.server.kill()
    return None


def must_keep_through_faults(run, cycles):
    """The disk refuses writes and syncs (EIO, then ENOSPC, alternately) under
    load: every write is answered with 0 or 258, those answered 0 survive a power
    cut taken during the fault or after it, and once the fault is cleared
    writes are acknowledged again. The problems found."""
    fail_file = os.path.join(run.work, "fail")
    run.model.allowed_codes = {READ_ONLY, CANNOT_PERSIST}
    problems = []
    for number in range(cycles):
        errno_name = "EIO" if number % 2 == 0 else "ENOSPC"
        clear_before_kill = number % 4 >= 2
        if run.state:
            shutil.rmtree(run.state)
        run.state = powercut.fresh_state(run.work)
        run.server = Server(run.argv, log=run.log,
                            env=powercut.env(run.shim, run.data, state=run.state, fail_file=fail_file))
        seen = {}

        def fault():
            time.sleep(random.uniform(0.2, 0.5))
            with run.model.lock:
                refused_before = run.model.refused_writes
            powercut.inject(fail_file, errno_name)
            time.sleep(random.uniform(0.3, 0.6))
            with run.model.lock:
                seen["refused"] = run.model.refused_writes - refused_before
            if clear_before_kill:
                powercut.clear(fail_file)
                with run.model.lock:
                    acked_before = run.model.acked_writes
                time.sleep(1.5)  # past the journal's one-second retry interval
                with run.model.lock:
                    seen["acked after"] = run.model.acked_writes - acked_before

        found = load_then_kill(run.server, run.model, 0, meanwhile=fault)
        powercut.clear(fail_file)
        run.cut()
        run.server = Server(run.argv, log=run.log, env=powercut.env(run.shim, run.data, state=powercut.fresh_state(run.work)))
        found += check(run.server.port, run.model)
        run.server.kill()
        if not seen.get("refused"):
            found.append(f"{errno_name} injected, yet no write was answered with code {CANNOT_PERSIST}")
        if clear_before_kill and not seen.get("acked after"):
            found.append(f"no write was acknowledged in the 1.5 s after {errno_name} was cleared")
        problems += [f"cycle {number + 1} ({errno_name}): {problem}" for problem in found]
        if problems:
            break
    return problems


def must_start(run, cycles):
    """A policy that may lose unsynced writes must still leave a directory iprotod
    starts on: a cut during a snapshot must not tear a segment that is no longer
    the last. The problems found (a refused restart)."""
    run.server = run.start()
    for number in range(cycles):
        try:
            load_then_kill(run.server, run.model, random.uniform(0.2, 1.2))
            run.cut()
            run.server = run.start()
        except RuntimeError as error:
            return [f"after cut {number + 1} the restart failed ({error}; iprotod said: {run.log_tail(1).strip()})"]
    run.server.kill()
    return []


def run_pass(run, check, summary):
    """Runs `check(run)` for its problems, prints `summary(run, seconds)`, the first
    problems and, on failure, the end of iprotod's log. True when it passed."""
    started = time.monotonic()
    try:
        problems = check(run)
    except Exception as error:  # a server that did not come back is a failure, not a crash of the test
        problems = [f"{type(error).__name__}: {error}"]
    run.close()
    print(summary(run, time.monotonic() - started))
    for problem in problems[:10]:
        print(f"  FAIL {problem}")
    if problems:
        print("iprotod's log, last lines:\n" + run.log_tail())
    return not problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("iprotod")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--fsync", default="batch,always", help="policies that must lose nothing (comma-separated)")
    parser.add_argument("--expect-loss", default="never", help="policies that must lose writes ('' for none)")
    parser.add_argument("--must-start", default="never",
                        help="policies that may lose writes but must always restart, for --cycles cuts ('' for none)")
    parser.add_argument("--faults", default="batch",
                        help="policies run through injected EIO/ENOSPC, for --cycles cycles ('' for none)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    options = parser.parse_args()
    random.seed(options.seed)
    keep = [p for p in options.fsync.split(",") if p]
    lose = [p for p in options.expect_loss.split(",") if p]
    start = [p for p in options.must_start.split(",") if p]
    faults = [p for p in options.faults.split(",") if p]

    shim = powercut.build()
    work = tempfile.mkdtemp(prefix="iproto-powercut-")
    failed = False
    for fsync in keep:
        failed |= not run_pass(Run(options.iprotod, shim, work, fsync), lambda run: must_keep(run, options.cycles),
                               lambda run, seconds: f"power-cut test (--fsync {run.fsync}, seed {options.seed}): "
                                                    f"{run.figures()}, in {seconds:.1f} s")
    for fsync in lose:
        run = Run(options.iprotod, shim, work, fsync)
        try:
            finding = must_lose(run)
            if finding:
                print(f"power-cut test (--fsync {fsync}, must lose): {run.figures()}; lost as expected: {finding}")
            else:
                print(f"  FAIL --fsync {fsync} lost nothing in {run.cuts} cuts: the cut did not drop unsynced writes")
                failed = True
        except Exception as error:
            print(f"  FAIL --fsync {fsync}: {type(error).__name__}: {error}")
            failed = True
        run.close()
    for fsync in start:
        failed |= not run_pass(Run(options.iprotod, shim, work, fsync), lambda run: must_start(run, options.cycles),
                               lambda run, seconds: f"power-cut test (--fsync {run.fsync}, must restart): "
                                                    f"{run.cuts} cuts, in {seconds:.1f} s")
    for fsync in faults:
        failed |= not run_pass(Run(options.iprotod, shim, work, fsync),
                               lambda run: must_keep_through_faults(run, max(options.cycles, 2)),
                               lambda run, seconds: f"power-cut test (--fsync {run.fsync}, disk faults): {run.figures()}, "
                                                    f"{run.model.refused_writes} writes answered {CANNOT_PERSIST}, "
                                                    f"in {seconds:.1f} s")
    shutil.rmtree(work, ignore_errors=True)
    print("failed" if failed else "passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
