"""A throwaway PostgreSQL cluster for tests and benchmarks (Debian's ``postgresql``).

``initdb`` as the ``postgres`` user into a fresh directory, the server
listening on a unix socket in that directory and on a free 127.0.0.1 port,
with trust authentication (nothing but local test processes can reach it);
:meth:`stop` shuts it down and removes the directory, also after a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise FileNotFoundError("PostgreSQL server binaries not found (apt install postgresql)")
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self.user = pwd.getpwnam("postgres")
        self.root = Path(tempfile.mkdtemp(prefix="amp-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.started = False

    def _as_postgres(self, *argv: str, timeout: float = 60) -> None:
        def demote() -> None:
            os.setgid(self.user.pw_gid)
            os.setuid(self.user.pw_uid)

        subprocess.run(list(argv), check=True, capture_output=True, timeout=timeout,
                       preexec_fn=demote, cwd=self.root)

    def start(self) -> ThrowawayPostgres:
        try:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
            self._as_postgres(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                              "-U", "postgres", "--no-sync", "-E", "UTF8")
            options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                       f"-c unix_socket_directories={self.root} -c fsync=off "
                       "-c max_connections=200")
            self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w",
                              "-t", "60", "-l", str(self.root / "server.log"), "-o", options,
                              "start", timeout=90)
            self.started = True
        except BaseException:
            self.stop()
            raise
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name from the caller's own code
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(subprocess.SubprocessError):
                self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                                  "immediate", "-w", "stop", timeout=60)
            self.started = False
        deadline = time.monotonic() + 10
        while (self.root / "data" / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
