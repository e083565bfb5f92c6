#!/usr/bin/env python3
"""The power-cut shim keeps what was synced and only that, and injects faults.

    Tests/PowerCut/shim_test.py

Runs small Python programs under the shim (each with a fresh state, killed
with SIGKILL at its end as iprotod is) and compares the directory after the
cut with what a disk that lost power must hold; then fails writes and syncs
through the control file and clears it. Prints "passed" or the differences,
and exits 1 on any.
"""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import powercut  # noqa: E402

PRELUDE = """
import errno, os, signal, sys
d = sys.argv[1]
def create(name):
    return os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
def sync_dir():
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
"""

# (what it shows, files before, program, files after the cut)
CUTS = [
    ("bytes written after the last fdatasync are dropped", {},
     """fd = create("a"); os.write(fd, b"synced "); os.fdatasync(fd); sync_dir(); os.write(fd, b"unsynced")""",
     {"a": b"synced "}),
    ("a file whose creation no directory fsync covered disappears", {},
     """fd = create("a"); os.write(fd, b"x"); os.fsync(fd)""",
     {}),
    ("a durable name without a synced content is empty", {},
     """fd = create("a"); sync_dir(); os.write(fd, b"x")""",
     {"a": b""}),
    ("an unsynced rename is undone, a synced one stays", {"old": b"1", "other": b"2"},
     """os.rename(os.path.join(d, "old"), os.path.join(d, "new")); sync_dir()
os.rename(os.path.join(d, "other"), os.path.join(d, "moved"))""",
     {"new": b"1", "other": b"2"}),
    ("a rename over a file, unsynced, brings the old file back", {"snapshot": b"old"},
     """fd = create("snapshot.tmp"); os.write(fd, b"new"); os.fsync(fd); sync_dir()
os.rename(os.path.join(d, "snapshot.tmp"), os.path.join(d, "snapshot"))""",
     {"snapshot": b"old", "snapshot.tmp": b"new"}),
    ("an unsynced unlink is undone with the file's durable content", {"a": b"kept"},
     """fd = os.open(os.path.join(d, "a"), os.O_WRONLY | os.O_APPEND); os.write(fd, b" lost")
os.unlink(os.path.join(d, "a"))""",
     {"a": b"kept"}),
    ("a synced unlink stays", {"a": b"x", "b": b"y"},
     """os.unlink(os.path.join(d, "a")); sync_dir()""",
     {"b": b"y"}),
    ("O_TRUNC and ftruncate count only once synced; then they stay", {"a": b"0123456789", "b": b"0123456789"},
     """fd = os.open(os.path.join(d, "a"), os.O_WRONLY | os.O_TRUNC); os.write(fd, b"ab")
fd = os.open(os.path.join(d, "b"), os.O_WRONLY); os.ftruncate(fd, 4); os.fsync(fd)
os.lseek(fd, 2, os.SEEK_SET); os.write(fd, b"zz")""",
     {"a": b"0123456789", "b": b"0123"}),
    ("a rewrite in the middle is taken at the next sync", {"a": b"0123456789"},
     """fd = os.open(os.path.join(d, "a"), os.O_WRONLY); os.pwrite(fd, b"ab", 3); os.fdatasync(fd)
os.pwrite(fd, b"cd", 6)""",
     {"a": b"012ab56789"}),
    ("syncs through several threads and files are all recorded", {},
     """import threading
def work(n):
    fd = create(f"f{n}")
    for i in range(200):
        os.write(fd, b"%d," % i)
        os.fdatasync(fd)
    os.write(fd, b"lost")
threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]; sync_dir()""",
     {f"f{n}": b"".join(b"%d," % i for i in range(200)) for n in range(4)}),
]

FAULTS = """
fail = sys.argv[2]
fd = create("a"); os.write(fd, b"before,")
def attempt(call):
    try:
        call()
        return "ok"
    except OSError as error:
        return errno.errorcode[error.errno]
results = []
with open(fail, "w") as f: f.write("ENOSPC\\n")
results += [attempt(lambda: os.write(fd, b"refused,")), attempt(lambda: os.fdatasync(fd))]
with open(fail, "w") as f: f.write("EIO\\n")
results += [attempt(lambda: os.pwrite(fd, b"refused,", 0)), attempt(lambda: os.fsync(fd)), attempt(sync_dir)]
os.unlink(fail)
results += [attempt(lambda: os.write(fd, b"after")), attempt(lambda: os.fdatasync(fd))]
print(" ".join(results))
"""
FAULTS_EXPECTED = "ENOSPC ENOSPC EIO EIO EIO ok ok"


def run(shim, work, before, program):
    data = tempfile.mkdtemp(prefix="data-", dir=work)
    for name, content in before.items():
        with open(os.path.join(data, name), "wb") as f:
            f.write(content)
    state = powercut.fresh_state(work)
    source = PRELUDE + textwrap.dedent(program) + "\nos.kill(os.getpid(), signal.SIGKILL)\n"
    process = subprocess.run([sys.executable, "-c", source, data], env=powercut.env(shim, data, state=state),
                             capture_output=True, text=True)
    if process.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the program exited {process.returncode}: {process.stderr.strip()}")
    powercut.apply_cut(data, state)
    after = {}
    for name in os.listdir(data):
        with open(os.path.join(data, name), "rb") as f:
            after[name] = f.read()
    return after


def main():
    shim = powercut.build()
    problems = []
    with tempfile.TemporaryDirectory(prefix="iproto-shim-") as work:
        for what, before, program, expected in CUTS:
            try:
                after = run(shim, work, before, program)
            except RuntimeError as error:
                problems.append(f"{what}: {error}")
                continue
            if after != expected:
                problems.append(f"{what}: after the cut {after!r}, expected {expected!r}")
        data = tempfile.mkdtemp(prefix="data-", dir=work)
        fail = os.path.join(work, "fail")
        process = subprocess.run([sys.executable, "-c", PRELUDE + FAULTS, data, fail],
                                 env=powercut.env(shim, data, fail_file=fail), capture_output=True, text=True)
        with open(os.path.join(data, "a"), "rb") as f:
            content = f.read()
        if process.stdout.strip() != FAULTS_EXPECTED or content != b"before,after":
            problems.append(f"fault injection: calls gave {process.stdout.strip()!r} {process.stderr.strip()!r} "
                            f"(expected {FAULTS_EXPECTED!r}), the file holds {content!r} (expected b'before,after')")
    print(f"power-cut shim: {len(CUTS)} cut scenarios, fault injection")
    for problem in problems:
        print(f"  FAIL {problem}")
    print("failed" if problems else "passed")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
