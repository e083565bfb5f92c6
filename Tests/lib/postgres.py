"""A throwaway PostgreSQL server on loopback for tests (Debian's postgresql package).

    with Postgres(directory) as pg: ... pg.url("dbname")

initdb and the server run as the `postgres` user when the test runs as root (PostgreSQL
refuses root); trust authentication on 127.0.0.1 only; fsync stays on (the default).
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess


def _bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: apt-get install -y postgresql")
    return found[-1]


class Postgres:
    def __init__(self, directory):
        self.directory = os.path.join(directory, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.prefix = []
        if os.geteuid() == 0:
            self.prefix = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args):
        run = subprocess.run(self.prefix + list(args), capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {run.stderr.strip() or run.stdout.strip()}")

    def __enter__(self):
        os.makedirs(self.directory)
        if self.prefix:
            user = pwd.getpwnam("postgres")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
            # Its parents (test temp dirs are 0700) must let it in.
            parent = os.path.dirname(self.directory)
            while parent != "/":
                if not os.stat(parent).st_mode & 0o001:
                    os.chmod(parent, os.stat(parent).st_mode | 0o011)
                parent = os.path.dirname(parent)
        self._run(_bin("initdb"), "-D", self.directory, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._run(_bin("pg_ctl"), "-D", self.directory, "-w", "-l", os.path.join(self.directory, "log"),
                  "-o", f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1", "start")
        return self

    def create_database(self, name):
        self._run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def __exit__(self, *exc):
        subprocess.run(self.prefix + [_bin("pg_ctl"), "-D", self.directory, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)
