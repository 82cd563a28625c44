"""How the agent runs keepalived and HAProxy for VRRP: keepalived enters the
namespace itself, HAProxy runs through its per-LB link."""

from __future__ import annotations

import os
from pathlib import Path

from amphora_agent.haproxy.layout import LbLayout
from amphora_agent.haproxy.process import service_spec as haproxy_spec
from amphora_agent.services.systemd import render_unit
from amphora_agent.vrrp.keepalived import Instance, service_spec
from amphora_contract.vrrp import haproxy_process_name

LB = "6f1c0b8e-8f0b-4b43-9a51-5d0f3c1e2a77"


def test_keepalived_unit_enters_the_namespace_itself(tmp_path: Path) -> None:
    inst = Instance("amphora-keepalived", tmp_path / "k.conf", tmp_path, "VRRP")
    spec = service_spec("/usr/sbin/keepalived", "amphora-haproxy", inst)
    assert spec.namespace is None  # not `ip netns exec`: track_process needs -s
    unit = render_unit(spec)
    assert (f"ExecStart=/usr/sbin/keepalived --dont-fork --log-console --log-detail "
            f"-s amphora-haproxy -f {tmp_path}/k.conf -p {tmp_path}/amphora-keepalived.main.pid"
            ) in unit
    assert "ip netns exec" not in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert spec.daemon[:4] == ("/usr/sbin/keepalived", "--log-detail", "-s", "amphora-haproxy")


def test_haproxy_runs_through_a_link_named_for_this_amphora(tmp_path: Path) -> None:
    layout = LbLayout(tmp_path, LB)
    layout.directory.mkdir()
    layout.config.write_text("global\n")
    spec = haproxy_spec("/usr/sbin/haproxy", layout, "amp", "amphora-haproxy", None)
    link = Path(spec.daemon[0])
    assert link.name == haproxy_process_name(str(tmp_path), LB)
    assert link.parent == layout.directory
    assert os.readlink(link) == "/usr/sbin/haproxy"
    assert spec.foreground[0] == spec.daemon[0]
    # an agent restart with another binary repoints the link
    spec = haproxy_spec("/usr/local/sbin/haproxy", layout, "amp", "amphora-haproxy", None)
    assert os.readlink(spec.daemon[0]) == "/usr/local/sbin/haproxy"
