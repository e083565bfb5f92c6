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
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from iproto import Server  # noqa: E402
from workload import Model, check, load_then_kill  # noqa: E402


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
            failures = load_then_kill(server, model, random.uniform(0.2, 1.2))
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
