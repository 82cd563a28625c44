from __future__ import annotations

import signal
from pathlib import Path

import pytest

from amphora_agent.services import ServiceSpec, SystemdServiceManager
from amphora_agent.services.systemd import render_unit

SPEC = ServiceSpec(
    name="haproxy-6f1c0b8e-8f0b-4b43-9a51-5d0f3c1e2a77",
    description="HAProxy for load balancer 6f1c0b8e",
    foreground=("/usr/sbin/haproxy", "-Ws", "-f", "/var/lib/octavia/lb/haproxy.cfg",
                "-p", "/var/lib/octavia/lb/haproxy.pid", "-L", "Ab$c%d"),
    daemon=("/usr/sbin/haproxy", "-D"),
    pid_file="/var/lib/octavia/lb/haproxy.pid",
    namespace="amphora-haproxy",
    reload_signal=signal.SIGUSR2,
    notify=True,
    limit_nofile=20000,
)


def _directives(unit: str) -> dict[str, str]:
    out = {}
    for line in unit.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out.setdefault(key, value)
    return out


def test_haproxy_unit_runs_master_worker_in_the_namespace() -> None:
    unit = _directives(render_unit(SPEC))
    assert unit["Type"] == "notify"
    assert unit["ExecStart"].startswith(
        "/sbin/ip netns exec amphora-haproxy /usr/sbin/haproxy -Ws -f ")
    assert unit["ExecReload"] == "/bin/kill -USR2 $MAINPID"
    assert unit["LimitNOFILE"] == "20000"
    assert unit["PIDFile"] == "/var/lib/octavia/lb/haproxy.pid"
    assert unit["KillMode"] == "mixed"


def test_unit_escapes_systemd_specifiers() -> None:
    exec_start = _directives(render_unit(SPEC))["ExecStart"]
    assert exec_start.endswith("-L 'Ab$$c%%d'")


def test_invalid_service_name_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid service name"):
        ServiceSpec(name="../evil", description="", foreground=("x",), daemon=("x",),
                    pid_file="/tmp/x.pid")


def test_manager_writes_unit_and_drives_systemctl(tmp_path: Path) -> None:
    log = tmp_path / "systemctl.log"
    fake = tmp_path / "systemctl"
    # A stand-in systemctl that records its arguments: systemd is not PID 1 here.
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n"
                    "case \"$1\" in is-active) exit 3;; esac\nexit 0\n")
    fake.chmod(0o755)
    manager = SystemdServiceManager(unit_dir=str(tmp_path / "units"), systemctl=str(fake))
    manager.reload(SPEC)  # not running: reload starts it
    unit_file = tmp_path / "units" / f"{SPEC.name}.service"
    assert unit_file.read_text() == render_unit(SPEC)
    calls = log.read_text().splitlines()
    assert calls == ["daemon-reload", f"enable {SPEC.name}.service",
                     f"is-active --quiet {SPEC.name}.service", f"start {SPEC.name}.service"]
    manager.install(SPEC)  # unchanged unit: no second daemon-reload
    assert log.read_text().splitlines() == calls
    manager.uninstall(SPEC.name)
    assert not unit_file.exists()
    assert log.read_text().splitlines()[-3:] == [f"stop {SPEC.name}.service",
                                                 f"disable {SPEC.name}.service", "daemon-reload"]


def test_units_the_agent_writes_have_bounded_start_and_stop() -> None:
    unit = _directives(render_unit(SPEC))
    assert 0 < int(unit["TimeoutStartSec"]) < 60  # below systemctl's own 60 s in _run()
    assert 0 < int(unit["TimeoutStopSec"]) <= 60
