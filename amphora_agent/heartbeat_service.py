"""The heartbeat sender as its own process, and the master's supervisor of it.

The sender used to be a thread in the gunicorn master. A lock that thread
held (logging, a stdio buffer) at the moment the master forked a worker was
inherited held, and the worker deadlocked before it served anything
(docs/agent.md, "Process model"). Run as ``python -m
amphora_agent.heartbeat_service`` (fork+exec), the sender shares no memory
with the master, so nothing it holds can leak into a worker, and the master
stays single-threaded whenever it forks.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from amphora_agent import heartbeat

LOG = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
# A sender that keeps dying is restarted at most this often.
RESTART_BACKOFF = 2.0


def _die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the master goes, even if it is SIGKILLed."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the master died before prctl took effect
        sys.exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amphora-heartbeat",
                                     description="Send the amphora's health heartbeats.")
    parser.add_argument("--config-file", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    _die_with_parent()
    from amphora_agent.health import should_send_heartbeat

    sender = heartbeat.HeartbeatSender(args.config_file, should_send=should_send_heartbeat)
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sender.stop())
    signal.signal(signal.SIGINT, lambda _sig, _frame: sender.stop())
    LOG.info("heartbeat sender started for %s", args.config_file)
    sender.run()  # in this (main) thread: the process has no other
    return 0


def command(config_file: str) -> list[str]:
    return [sys.executable, "-m", "amphora_agent.heartbeat_service", "--config-file", config_file]


class HeartbeatSupervisor:
    """Keeps one heartbeat process running; driven from the master's loop.

    gunicorn's master reaps every child with ``waitpid(-1)``, so the exit
    status may already be gone when :meth:`ensure_running` looks; ``poll``
    then reports the process as exited all the same.
    """

    def __init__(self, config_file: str) -> None:
        self.config_file = config_file
        self.proc: subprocess.Popen[bytes] | None = None
        self._last_start = 0.0
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        """What to run (the VRRP guard's supervisor runs another module)."""
        return command(self.config_file)

    def ensure_running(self) -> None:
        if self._stopped:
            return
        if self.proc is not None and self.proc.poll() is None:
            return
        now = time.monotonic()
        if self.proc is not None:
            if now - self._last_start < RESTART_BACKOFF:
                return
            LOG.warning("heartbeat process %d exited (%s); restarting", self.proc.pid,
                        self.proc.returncode)
        self._last_start = now
        # close_fds (the default): the sender holds no listening socket.
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL)
        LOG.info("heartbeat process %d started", self.proc.pid)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped = True
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)


if __name__ == "__main__":
    sys.exit(main())
