"""Direct service manager: the agent launches daemons itself.

Each daemon forks into the background (HAProxy ``-D``, keepalived's default)
and writes its pid file, so it is reparented away from the agent: an agent
restart neither kills it nor loses track of it, because the pid file and the
stored spec stay on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from amphora_agent import fileutil
from amphora_agent.services.base import ServiceError, ServiceManager, ServiceSpec

STOP_TIMEOUT = 10.0
START_TIMEOUT = 10.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not running.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _takes_signal(pid: int, signum: int) -> bool:
    """Whether ``pid`` catches ``signum`` or holds it blocked (a signalfd
    reader, as keepalived is). Before either, the signal takes its default
    action: SIGHUP and SIGUSR2 would kill the daemon, or be lost."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return False
    bit = 1 << (signum - 1)
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("SigCgt", "SigBlk") and int(value.strip(), 16) & bit:
            return True
    return False


def _read_pid(path: str) -> int | None:
    try:
        text = Path(path).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if not text or not text[0].isdigit():
        return None
    return int(text[0])


class DirectServiceManager(ServiceManager):
    kind = "direct"

    def __init__(self, state_dir: str, *, start_timeout: float = START_TIMEOUT) -> None:
        self.state_dir = Path(state_dir)
        self.start_timeout = start_timeout

    def _spec_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _load(self, name: str) -> ServiceSpec | None:
        try:
            data = json.loads(self._spec_path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        data["foreground"] = tuple(data["foreground"])
        data["daemon"] = tuple(data["daemon"])
        return ServiceSpec(**data)

    def install(self, spec: ServiceSpec) -> None:
        fileutil.atomic_write(self._spec_path(spec.name),
                              json.dumps(asdict(spec), sort_keys=True).encode())

    def main_pid(self, name: str) -> int | None:
        spec = self._load(name)
        if spec is None:
            return None
        pid = _read_pid(spec.pid_file)
        return pid if pid is not None and _pid_alive(pid) else None

    def is_running(self, name: str) -> bool:
        return self.main_pid(name) is not None

    def _command(self, spec: ServiceSpec) -> list[str]:
        argv = list(spec.daemon)
        if spec.namespace:
            argv = ["ip", "netns", "exec", spec.namespace, *argv]
        if spec.limit_nofile:
            # prlimit rather than a preexec_fn: forking with a Python callback
            # is not safe in the agent's threaded worker
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            limit = min(spec.limit_nofile, hard)
            argv = ["prlimit", f"--nofile={limit}:{limit}", "--", *argv]
        return argv

    def start(self, spec: ServiceSpec) -> None:
        self.install(spec)
        if self.is_running(spec.name):
            return
        fileutil.remove(spec.pid_file)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **spec.env}
        # A file, not a pipe: a daemon that keeps stdio open must not block us.
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(
                self._command(spec), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, check=False, timeout=self.start_timeout,
                start_new_session=True)
            out.seek(0)
            output = out.read().decode(errors="replace").strip()
        if proc.returncode != 0:
            raise ServiceError(f"{spec.name} failed to start (exit {proc.returncode})", output)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            pid = self.main_pid(spec.name)
            if pid is not None:
                # started means ready for its reload signal too
                self._await_signal_handler(spec, pid, deadline)
                return
            time.sleep(0.01)
        raise ServiceError(f"{spec.name} started but wrote no live pid to {spec.pid_file}",
                           output)

    def _await_signal_handler(self, spec: ServiceSpec, pid: int, deadline: float) -> None:
        """Wait until ``pid`` handles ``spec.reload_signal``: a daemon writes its
        pid file before it installs its handlers (HAProxy's master forks its
        worker first), and a reload signal that arrives in between is lost
        or kills it."""
        while not _takes_signal(pid, spec.reload_signal):
            if not _pid_alive(pid):
                raise ServiceError(f"{spec.name} (pid {pid}) exited while starting")
            if time.monotonic() >= deadline:
                raise ServiceError(f"{spec.name} (pid {pid}) does not handle its reload "
                                   f"signal {signal.Signals(spec.reload_signal).name}")
            time.sleep(0.005)

    def stop(self, name: str) -> None:
        pid = self.main_pid(name)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.01)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT
            while time.monotonic() < deadline and _pid_alive(pid):
                time.sleep(0.01)
        spec = self._load(name)
        if spec is not None:
            fileutil.remove(spec.pid_file)

    def reload(self, spec: ServiceSpec) -> None:
        self.install(spec)
        pid = self.main_pid(spec.name)
        if pid is None:
            self.start(spec)
            return
        # started by an earlier agent, perhaps moments ago: never signal early
        self._await_signal_handler(spec, pid, time.monotonic() + self.start_timeout)
        os.kill(pid, spec.reload_signal)

    def uninstall(self, name: str) -> None:
        self.stop(name)
        fileutil.remove(self._spec_path(name))
