"""Fixtures for the controller on the local fabric: a saved fabric with two
members and a client, the controller in-process or as ``amphora-controller``
subprocesses, and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controller_stub.compute import nsutil
from controller_stub.compute.local import Endpoint, LocalFabric
from controller_stub.controller import config as config_mod
from controller_stub.controller import models
from controller_stub.controller.constants import PENDING_STATUSES
from controller_stub.controller.daemon import Service
from controller_stub.controller.pgcluster import ThrowawayPostgres

pytestmark = pytest.mark.root


@dataclass
class Site:
    """A fabric saved for controllers to attach to, with members and a client."""

    fabric: LocalFabric
    members: list[Endpoint]
    client: Endpoint
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def config(self, database_url: str, *, controller_id: str = "c1", lease: float = 2.0,
               attempts: int = 3, seconds: float = 6.0, agent_timeout: float = 1.5,
               workers: int = 2, zones: str = "", keep_failed: bool = False,
               extra: str = "", api: str = "bind_port = 0\n") -> Path:
        """``api``: the ``[api]`` section's lines (default: any free loopback port)."""
        path = self.workdir / f"controller-{controller_id}.conf"
        path.write_text(
            f"[controller]\nid = {controller_id}\nworkers = {workers}\n"
            f"lease_seconds = {lease}\npoll_seconds = 0.05\n"
            f"keep_failed_amphorae = {'true' if keep_failed else 'false'}\n"
            f"[database]\nurl = {database_url}\n"
            f"[compute]\ndriver = local\nworkdir = {self.workdir}\nzones = {zones}\n"
            f"[certificates]\ndirectory = {self.workdir}/certificates\n"
            f"[budget]\nattempts = {attempts}\nseconds = {seconds}\n"
            f"agent_timeout = {agent_timeout}\nbackoff = 0.1\nboot_timeout = 30\n"
            f"[housekeeping]\ninterval = 3600\n[api]\n{api}{extra}", encoding="utf-8")
        return path

    def service(self, database_url: str, **kwargs: Any) -> Service:
        return Service(config_mod.load(self.config(database_url, **kwargs)))

    def spawn(self, config: Path, kill_at: str | None = None,
              pause_at: str | None = None) -> subprocess.Popen[bytes]:
        """``amphora-controller`` as a process; ``kill_at`` = KIND:STEP makes it SIGKILL
        itself there, ``pause_at`` holds that step until it is told to stop."""
        env = dict(os.environ)
        env.pop("AMPHORA_CONTROLLER_KILL_AT", None)
        env.pop("AMPHORA_CONTROLLER_PAUSE_AT", None)
        if kill_at:
            env["AMPHORA_CONTROLLER_KILL_AT"] = kill_at
        if pause_at:
            env["AMPHORA_CONTROLLER_PAUSE_AT"] = pause_at
        tool = shutil.which("amphora-controller", path=os.path.dirname(sys.executable))
        argv = [tool] if tool else [sys.executable, "-m", "controller_stub.controller.daemon"]
        log = open(self.workdir / f"{config.stem}.log", "ab")
        with log:
            proc = subprocess.Popen([*argv, "--config-file", str(config)], env=env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.processes.append(proc)
        return proc

    def get(self, vip: str, path: str = "/") -> str:
        """One request through the VIP from the client; the member's name."""
        def fetch() -> str:
            conn = http.client.HTTPConnection(vip, 80, timeout=3)
            try:
                conn.request("GET", path)
                return json.loads(conn.getresponse().read())["member"]
            finally:
                conn.close()
        return nsutil.run_in(self.client.namespace, fetch)

    def served_by(self, vip: str, expected: set[str], timeout: float = 15.0,
                  path: str = "/") -> set[str]:
        """Poll until the set of members answering 12 requests equals ``expected``."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            try:
                seen = {self.get(vip, path) for _ in range(12)}
            except OSError:
                seen = set()
            if seen == expected:
                return seen
            time.sleep(0.1)
        return seen


@pytest.fixture
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    # short path: HAProxy's sockets live below the amphora directories
    workdir = Path(f"/tmp/ampc-{os.urandom(3).hex()}")
    fabric = LocalFabric(workdir)
    s = None
    try:
        fabric.save()
        members = [fabric.create_member("member", name=f"m{i}") for i in (1, 2)]
        s = Site(fabric, members, fabric.create_client("client"), workdir)
        yield s
    finally:
        for proc in (s.processes if s else []):
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        fabric.teardown()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as cluster:
        yield cluster


def pending_objects(sessions: Any) -> list[tuple[str, str, str]]:
    """Every object still in PENDING_*: (table, id, status)."""
    found = []
    with sessions() as session:
        for model in (models.LoadBalancer, models.Listener, models.Pool, models.Member,
                      models.HealthMonitor, models.L7Policy, models.L7Rule):
            for row in session.scalars(select(model).where(
                    model.provisioning_status.in_(PENDING_STATUSES))):
                found.append((model.__tablename__, row.id, row.provisioning_status))
    return found


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
