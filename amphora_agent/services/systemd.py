"""systemd service manager: one unit per daemon, driven with ``systemctl``.

Used in real amphora images. HAProxy runs ``-Ws`` (master-worker with
sd_notify) so ``systemctl reload`` is a seamless master reload.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
from pathlib import Path

from amphora_agent import fileutil
from amphora_agent.services.base import ServiceError, ServiceManager, ServiceSpec

# Persistent and enabled: a rebooted amphora brings its load balancers back.
UNIT_DIR = "/etc/systemd/system"
# Bounded below _run()'s 60 s so that systemd, not our timeout, fails a hung
# start, and a unit started at boot can never hold the boot (docs/image.md).
START_TIMEOUT_SEC = 30
STOP_TIMEOUT_SEC = 30


def _quote(arg: str) -> str:
    """systemd's command-line quoting: `$` and `%` are its own specifiers."""
    return shlex.quote(arg.replace("%", "%%").replace("$", "$$"))


def render_unit(spec: ServiceSpec) -> str:
    argv = list(spec.foreground)
    if spec.namespace:
        argv = ["/sbin/ip", "netns", "exec", spec.namespace, *argv]
    lines = [
        "# Written by the amphora agent; do not edit.",
        "[Unit]",
        f"Description={spec.description}",
        "After=network.target amphora-netns.service",
        "",
        "[Service]",
        f"Type={'notify' if spec.notify else 'simple'}",
        f"ExecStart={' '.join(_quote(a) for a in argv)}",
        f"ExecReload=/bin/kill -{signal.Signals(spec.reload_signal).name.removeprefix('SIG')} "
        "$MAINPID",
        f"PIDFile={spec.pid_file}",
        "KillMode=mixed",
        "Restart=on-failure",
        "RestartSec=1s",
        f"TimeoutStartSec={START_TIMEOUT_SEC}",
        f"TimeoutStopSec={STOP_TIMEOUT_SEC}",
    ]
    if spec.limit_nofile:
        lines.append(f"LimitNOFILE={spec.limit_nofile}")
    for key, value in sorted(spec.env.items()):
        lines.append(f"Environment={_quote(f'{key}={value}')}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


class SystemdServiceManager(ServiceManager):
    kind = "systemd"

    def __init__(self, unit_dir: str = UNIT_DIR, systemctl: str = "systemctl") -> None:
        self.unit_dir = Path(unit_dir)
        self.systemctl = systemctl

    def unit_path(self, name: str) -> Path:
        return self.unit_dir / f"{name}.service"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.systemctl, *args], capture_output=True, text=True,
                              check=False, timeout=60)
        if check and proc.returncode != 0:
            raise ServiceError(f"systemctl {' '.join(args)} failed (exit {proc.returncode})",
                               (proc.stdout + proc.stderr).strip())
        return proc

    def install(self, spec: ServiceSpec) -> None:
        unit = render_unit(spec).encode()
        path = self.unit_path(spec.name)
        try:
            if path.read_bytes() == unit:
                return
        except FileNotFoundError:
            pass
        fileutil.atomic_write(path, unit, mode=0o644)
        self._run("daemon-reload")
        self._run("enable", f"{spec.name}.service")

    def start(self, spec: ServiceSpec) -> None:
        self.install(spec)
        self._run("start", f"{spec.name}.service")

    def stop(self, name: str) -> None:
        if self.unit_path(name).exists():
            self._run("stop", f"{name}.service")

    def reload(self, spec: ServiceSpec) -> None:
        self.install(spec)
        # reload-or-restart would restart a running service whose reload
        # failed; we want "reload if running, else start".
        if self.is_running(spec.name):
            self._run("reload", f"{spec.name}.service")
        else:
            self._run("start", f"{spec.name}.service")

    def is_running(self, name: str) -> bool:
        return self._run("is-active", "--quiet", f"{name}.service", check=False).returncode == 0

    def main_pid(self, name: str) -> int | None:
        proc = self._run("show", "--property=MainPID", "--value", f"{name}.service", check=False)
        value = proc.stdout.strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    def uninstall(self, name: str) -> None:
        self.stop(name)
        if self.unit_path(name).exists():
            self._run("disable", f"{name}.service", check=False)
        if fileutil.remove(self.unit_path(name)):
            self._run("daemon-reload")
