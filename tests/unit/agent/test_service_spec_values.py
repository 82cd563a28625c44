"""Nothing reaches a unit file that could add a line of its own."""

from __future__ import annotations

import signal

import pytest

from amphora_agent.services import ServiceSpec
from amphora_agent.services.systemd import render_unit


def _spec(**overrides: object) -> ServiceSpec:
    fields: dict[str, object] = {
        "name": "haproxy-6f1a7c55-3a47-4f3e-9b65-0c3e4f0a9d11", "description": "HAProxy",
        "foreground": ("/usr/sbin/haproxy", "-Ws"), "daemon": ("/usr/sbin/haproxy", "-D"),
        "pid_file": "/var/lib/octavia/x/haproxy.pid", "namespace": "amphora-haproxy",
        "reload_signal": signal.SIGUSR2, "env": {"A": "b"}}
    fields.update(overrides)
    return ServiceSpec(**fields)  # type: ignore[arg-type]


INJECTIONS = {
    "description": "HAProxy\nExecStartPre=/bin/sh -c id",
    "foreground": ("/usr/sbin/haproxy", "-f", "/x\nExecStartPre=/bin/sh"),
    "daemon": ("/usr/sbin/haproxy", "-D\r\n"),
    "pid_file": "/run/x.pid\nUser=root",
    "namespace": "ns\n",
    "env": {"A": "b\nExecStartPost=/bin/sh"},
}


@pytest.mark.parametrize("field", sorted(INJECTIONS))
def test_a_value_with_a_line_break_is_refused(field: str) -> None:
    unit = render_unit(_spec())
    assert [line for line in unit.splitlines() if line.startswith("Exec")] == [
        "ExecStart=/sbin/ip netns exec amphora-haproxy /usr/sbin/haproxy -Ws",
        "ExecReload=/bin/kill -USR2 $MAINPID"]
    with pytest.raises(ValueError):
        _spec(**{field: INJECTIONS[field]})
