"""``systemctl`` for Octavia's amphora agent where no systemd runs.

Octavia's agent installs a unit per load balancer (``haproxy-<lb>.service``)
and one for keepalived (``octavia-keepalived.service``) and drives them with
``systemctl start|stop|reload|restart``. This runs those units' own
``ExecStartPre``/``ExecStart``/``ExecReload`` lines from
/usr/lib/systemd/system (with their ``Environment`` and ``$MAINPID``) and
keeps each main PID (a ``Type=forking`` unit's from its ``PIDFile``) under
``--state``; ``enable``, ``disable`` and ``daemon-reload`` have nothing to do
here. Stdlib only: it runs under Octavia's virtualenv (see :mod:`octavia_launch`).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

UNITS = Path("/usr/lib/systemd/system")
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _unit(service: str) -> dict[str, list[str]]:
    name = service if service.endswith(".service") else f"{service}.service"
    lines: dict[str, list[str]] = {}
    for raw in (UNITS / name).read_text(encoding="utf-8").splitlines():
        key, sep, value = raw.strip().partition("=")
        if sep and not key.startswith(("#", "[")):
            lines.setdefault(key, []).append(value)
    return lines


def _argv(line: str, env: dict[str, str]) -> list[str]:
    return [_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), word)
            for word in shlex.split(line.lstrip("-@+!"))]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Service:
    def __init__(self, state: Path, service: str) -> None:
        self.name = service.removesuffix(".service")
        self.unit = _unit(service)
        self.env = dict(os.environ)
        for entry in self.unit.get("Environment", []):
            for word in shlex.split(entry):
                key, _, value = word.partition("=")
                self.env[key] = value
        self.dir = state / "units"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pid_file = self.dir / f"{self.name}.mainpid"

    def _limits(self) -> None:
        """``LimitNOFILE``, as far as this host lets it go (its hard limit)."""
        for value in self.unit.get("LimitNOFILE", [])[-1:]:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            limit = min(int(value), hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    def main_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _run(self, key: str) -> None:
        env = {**self.env, "MAINPID": str(self.main_pid() or "")}
        for line in self.unit.get(key, []):
            subprocess.run(_argv(line, env), check=True, env=env)

    def start(self) -> None:
        if self.main_pid() is not None:
            return
        self._run("ExecStartPre")
        [line] = self.unit["ExecStart"]
        log_file = self.dir / f"{self.name}.log"
        with open(log_file, "ab") as log:
            proc = subprocess.Popen(_argv(line, self.env), env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=self._limits)
        if self.unit.get("Type", [""])[-1] == "forking":  # its PIDFile names the daemon
            if proc.wait(30) != 0:
                tail = log_file.read_text(errors="replace")[-1500:]
                sys.exit(f"{self.name}.service failed to start:\n{tail}")
            daemon = Path(self.unit["PIDFile"][-1])
            deadline = time.monotonic() + 15
            while not daemon.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.pid_file.write_text(daemon.read_text(encoding="utf-8").strip(),
                                     encoding="utf-8")
            return
        self.pid_file.write_text(str(proc.pid), encoding="utf-8")
        pid_file = self.env.get("PIDFILE")
        deadline = time.monotonic() + 15
        while pid_file and not os.path.exists(pid_file):  # up: its pid file written
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_file.read_text(errors="replace")[-1500:]
                sys.exit(f"{self.name}.service failed to start:\n{tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        pid = self.main_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def reload(self) -> None:
        if self.main_pid() is None:
            sys.exit(f"Job for {self.name}.service is not active, cannot reload.")
        self._run("ExecReload")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("command")
    parser.add_argument("services", nargs="*")
    args = parser.parse_args()
    if args.command in ("daemon-reload", "enable", "disable"):
        return
    for name in args.services:
        service = Service(args.state, name)
        if args.command == "start":
            service.start()
        elif args.command == "stop":
            service.stop()
        elif args.command == "reload":
            service.reload()
        elif args.command == "restart":
            service.stop()
            service.start()
        elif args.command == "is-active":
            sys.exit(0 if service.main_pid() else 3)
        else:
            sys.exit(f"systemctl: {args.command} is not supported here")


if __name__ == "__main__":
    main()
