"""A real Keystone (PyPI's, in .venv-keystone) on loopback: SQLite, fernet
tokens, ``keystone-manage db_sync`` and ``bootstrap``, served by the standard
library's threaded WSGI server (keystone parses its own command line, so it
runs under a runner that has none)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography.fernet import Fernet

VENV = Path(__file__).resolve().parents[3] / ".venv-keystone" / "bin"
PASSWORD = "keystone-admin-" + os.urandom(6).hex()


_RUNNER = """
import socketserver, sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
port = int(sys.argv[1])
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application
class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass
make_server("127.0.0.1", port, application, Server, Quiet).serve_forever()
"""


@dataclass
class Keystone:
    url: str  # http://127.0.0.1:PORT/v3
    admin_password: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _key_repository(path: Path) -> None:
    """Key files 0 (staged) and 1 (primary), as ``keystone-manage fernet_setup``
    writes them (written here: each keystone-manage run costs seconds)."""
    path.mkdir(mode=0o700)
    for name in ("0", "1"):
        fd = os.open(path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, Fernet.generate_key())
        os.close(fd)


def _manage(config: Path, *args: str) -> None:
    subprocess.run([str(VENV / "keystone-manage"), "--config-file", str(config), *args],
                   check=True, capture_output=True, timeout=300)


def keystone(workdir: Path) -> Iterator[Keystone]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v3"
    config = workdir / "keystone.conf"
    config.write_text(
        f"[database]\nconnection = sqlite:///{workdir}/keystone.db\n"
        f"[token]\nprovider = fernet\n"
        f"[fernet_tokens]\nkey_repository = {workdir}/fernet-keys\n"
        f"[fernet_receipts]\nkey_repository = {workdir}/receipt-keys\n"
        f"[credential]\nkey_repository = {workdir}/credential-keys\n", encoding="utf-8")
    for repository in ("fernet-keys", "receipt-keys", "credential-keys"):
        _key_repository(workdir / repository)
    _manage(config, "db_sync")
    _manage(config, "bootstrap", "--bootstrap-password", PASSWORD,
            "--bootstrap-admin-url", url, "--bootstrap-public-url", url,
            "--bootstrap-internal-url", url, "--bootstrap-region-id", "RegionOne")
    env = {"PATH": os.environ["PATH"], "OS_KEYSTONE_CONFIG_DIR": str(workdir)}
    log = open(workdir / "keystone.log", "ab")
    with log:
        proc = subprocess.Popen([str(VENV / "python"), "-c", _RUNNER, str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(url, timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("keystone did not start: "
                                   + (workdir / "keystone.log").read_text(errors="replace"))
            time.sleep(0.2)
        yield Keystone(url, PASSWORD)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
