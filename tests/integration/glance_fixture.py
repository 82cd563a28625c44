"""A real Glance (the PyPI ``glance`` package) for tests: gunicorn, sqlite, file store, no Keystone.

Glance runs from its own virtualenv (``.venv-glance``, made by ``make
.venv-glance``) because its dependency pins clash with ours. The server binds
127.0.0.1 on a free port; the process group is killed by a finalizer even when
a test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from controller_stub.local_agent import free_port

REPO = Path(__file__).resolve().parents[2]
GLANCE_VENV = Path(os.environ.get("AMPHORA_GLANCE_VENV", REPO / ".venv-glance"))
START_TIMEOUT = 90.0


@dataclass(frozen=True)
class GlanceServer:
    url: str
    workdir: Path
    log: Path


def _paste_ini() -> Path:
    found = sorted(GLANCE_VENV.glob("etc/glance/glance-api-paste.ini"))
    if not found:
        found = sorted(GLANCE_VENV.glob("lib/python3*/site-packages/glance/../etc/glance/"
                                        "glance-api-paste.ini"))
    if not found:
        raise RuntimeError(f"glance-api-paste.ini not found in {GLANCE_VENV}")
    return found[0]


def _write_config(workdir: Path, port: int) -> Path:
    confdir = workdir / "etc"
    confdir.mkdir()
    for sub in ("images", "staging", "tasks", "locks"):
        (workdir / sub).mkdir()
    shutil.copy(_paste_ini(), confdir / "glance-api-paste.ini")
    (confdir / "glance-api.conf").write_text(f"""\
[DEFAULT]
enabled_backends = fs:file
worker_self_reference_url = http://127.0.0.1:{port}
log_file = {workdir / "glance-api.log"}
enabled_import_methods = []

[database]
connection = sqlite:///{workdir / "glance.sqlite"}

[paste_deploy]
flavor =
config_file = {confdir / "glance-api-paste.ini"}

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = {workdir / "images"}

[os_glance_staging_store]
filesystem_store_datadir = {workdir / "staging"}

[os_glance_tasks_store]
filesystem_store_datadir = {workdir / "tasks"}

[oslo_concurrency]
lock_path = {workdir / "locks"}

[oslo_policy]
enforce_scope = false
enforce_new_defaults = false
""")
    return confdir


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"glance exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/v2/images", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"glance did not answer within {START_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def _check_loopback_only(port: int) -> None:
    """The test Glance must listen on loopback only (the suite's network rule);
    a setup guard, so a wrong bind stops the run instead of being a product test."""
    listeners = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                               text=True, check=True).stdout
    local = [line.split()[3] for line in listeners.splitlines()]
    if local != [f"127.0.0.1:{port}"]:
        raise RuntimeError(f"glance listens on {local}, not only 127.0.0.1:{port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=15)


def start_glance(workdir: Path) -> tuple[GlanceServer, subprocess.Popen[bytes]]:
    """Sync the database and start glance-api under gunicorn on a free loopback port."""
    gunicorn = GLANCE_VENV / "bin" / "gunicorn"
    manage = GLANCE_VENV / "bin" / "glance-manage"
    if not gunicorn.exists() or not manage.exists():
        raise RuntimeError(f"no Glance virtualenv at {GLANCE_VENV}: run 'make .venv-glance'")
    port = free_port()
    confdir = _write_config(workdir, port)
    env = {**os.environ, "OS_GLANCE_CONFIG_DIR": str(confdir)}
    env.pop("PYTHONPATH", None)
    subprocess.run([str(manage), "--config-file", str(confdir / "glance-api.conf"), "db_sync"],
                   check=True, env=env, capture_output=True, timeout=300)
    log = workdir / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4",
             "--timeout", "120", "glance.common.wsgi_app:init_app()"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        _check_loopback_only(port)
    except BaseException:
        _stop(proc)
        raise
    return GlanceServer(url=url, workdir=workdir, log=log), proc


@pytest.fixture(scope="session")
def glance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GlanceServer]:
    """A running Glance v2 API without Keystone (every request is an admin)."""
    server, proc = start_glance(tmp_path_factory.mktemp("glance"))
    try:
        yield server
    finally:
        _stop(proc)
