"""The power-cut shim (Tests/PowerCut/powercut.c) from Python: build it, start a
program under it, inject and clear write faults, and apply a simulated power cut.

    shim = powercut.build()
    state = powercut.fresh_state(work)
    env = powercut.env(shim, data_dir, state=state)      # for subprocess.Popen(env=...)
    ...                                                  # the program runs, and is killed
    powercut.apply_cut(data_dir, state)                  # data_dir now holds only what was synced

    env = powercut.env(shim, data_dir, fail_file=path)   # fault injection only
    powercut.inject(path, "ENOSPC"); ...; powercut.clear(path)
"""
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SOURCE = os.path.join(ROOT, "Tests", "PowerCut", "powercut.c")


def build(out_dir=None):
    """Compiles the shim (when its source is newer than the library) into
    out_dir (default .build/powercut) and returns the library's path."""
    out_dir = out_dir or os.path.join(ROOT, ".build", "powercut")
    os.makedirs(out_dir, exist_ok=True)
    library = os.path.join(out_dir, "powercut.so")
    if not os.path.exists(library) or os.path.getmtime(library) < os.path.getmtime(SOURCE):
        temporary = library + f".{os.getpid()}.tmp"
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", temporary, SOURCE, "-ldl", "-lpthread"], check=True)
        os.replace(temporary, library)
    return library


def fresh_state(parent):
    """A new empty directory for the shim to record the durable view in."""
    return tempfile.mkdtemp(prefix="powercut-state-", dir=parent)


def env(shim, data_dir, state=None, fail_file=None, base=None):
    """The environment for a program whose files in data_dir the shim watches:
    recording the durable view in `state` (a fresh_state), and failing writes
    and syncs while `fail_file` exists. Either may be None."""
    result = dict(os.environ if base is None else base)
    result["LD_PRELOAD"] = shim
    result["POWERCUT_DIR"] = os.path.abspath(data_dir)
    for name, value in (("POWERCUT_STATE", state), ("POWERCUT_FAIL_FILE", fail_file)):
        if value:
            result[name] = os.path.abspath(value)
        else:
            result.pop(name, None)
    return result


def inject(fail_file, errno_name="ENOSPC"):
    """From now on writes and syncs in the watched directory fail with errno_name
    (ENOSPC, EIO, EDQUOT or EROFS)."""
    with open(fail_file + ".tmp", "w") as f:
        f.write(errno_name + "\n")
    os.replace(fail_file + ".tmp", fail_file)


def clear(fail_file):
    """Writes and syncs succeed again."""
    try:
        os.unlink(fail_file)
    except FileNotFoundError:
        pass


def durable_entries(state):
    """{name: id} of the directory as of its last fsync."""
    entries = {}
    with open(os.path.join(state, "dir")) as f:
        for line in f:
            file_id, name = line.rstrip("\n").split("\t", 1)
            entries[name] = file_id
    return entries


def apply_cut(data_dir, state):
    """Rewrites data_dir (the program must be dead) as the disk would hold it
    after a power cut now: exactly the entries of the last directory fsync,
    each with its content as of its last sync. Returns what the cut took away:
    {"bytes": bytes that were in files and are not any more, "files": names gone, "restored": names
    brought back (an unsynced rename or unlink undone)}."""
    entries = durable_entries(state)
    before = {name: os.path.getsize(os.path.join(data_dir, name)) for name in os.listdir(data_dir)
              if not os.path.isdir(os.path.join(data_dir, name))}  # subdirectories are not modelled
    for name in before:
        os.unlink(os.path.join(data_dir, name))
    after = {}
    for name, file_id in entries.items():
        shadow = os.path.join(state, file_id)
        target = os.path.join(data_dir, name)
        if os.path.exists(shadow):
            shutil.copyfile(shadow, target)
        else:
            open(target, "wb").close()
        after[name] = os.path.getsize(target)
    dropped = sum(max(0, size - after.get(name, 0)) for name, size in before.items())
    return {"bytes": dropped, "files": sorted(set(before) - set(entries)),
            "restored": sorted(set(entries) - set(before))}
