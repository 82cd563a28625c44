"""Run a real agent process (gunicorn, mTLS) and wait until it answers.

Used by the local compute driver, the demo, benchmarks and tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from amphora_contract import netns
from controller_stub.client import AgentClient


class AgentProcess:
    """One agent process; ``launcher`` is the command that starts it without its
    ``--config-file`` (default: this tree's ``amphora-agent``), e.g. the agent of
    another release in its own virtualenv (:mod:`controller_stub.agent_launch`)."""

    def __init__(self, config_file: str | os.PathLike[str], *, namespace: str | None = None,
                 log_file: str | os.PathLike[str] | None = None,
                 launcher: list[str] | None = None) -> None:
        self.config_file = str(config_file)
        self.namespace = namespace
        self.log_file = Path(log_file) if log_file else Path(self.config_file).with_suffix(".log")
        self.launcher = launcher
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        if self.launcher:
            argv = list(self.launcher)
        else:
            agent = shutil.which("amphora-agent", path=os.path.dirname(sys.executable))
            argv = [agent] if agent else [sys.executable, "-m", "amphora_agent.cli"]
        argv += ["--config-file", self.config_file]
        if self.namespace:
            # nsenter switches only the network namespace; ``ip netns exec``
            # would also give the agent a private mount namespace, hiding the
            # HAProxy namespace it creates under /run/netns from everyone else.
            argv = ["nsenter", f"--net={netns.path(self.namespace)}", "--", *argv]
        return argv

    def start(self) -> None:
        env = None
        if self.launcher:
            # another virtualenv's agent imports its own code, not this tree's: no
            # PYTHONPATH, and a working directory (``python -m`` puts it first on
            # sys.path for the helpers the agent spawns) with no packages in it
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env=env, cwd=Path(self.config_file).parent)

    def wait_ready(self, client: AgentClient, timeout: float = 30.0,
                   interval: float = 0.05) -> None:
        """Poll ``GET /`` until it answers; fail early if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            if client.answers():
                return
            time.sleep(interval)
        raise TimeoutError(f"agent not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
