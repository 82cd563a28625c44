"""PUT /1.0/vrrp/upload and /1.0/vrrp/{start,stop,reload} through a real agent,
real keepalived and a real HAProxy: the VIP follows this amphora's HAProxy."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from controller_stub.client import BadRequest
from controller_stub.local_agent import RunningAgent, free_port
from controller_stub.octavia_style import OctaviaStyleConfig
from keepalived import HaproxyTrack, VrrpInstance, render
from tests.integration.keepalived.conftest import PEER_IP, VIP, VRRP_IP

CONFIG = "vrrp/octavia-keepalived.conf"


def wait_for(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def vip_present(ns: str) -> bool:
    out = subprocess.run(["ip", "-n", ns, "-o", "addr", "show", "dev", "eth1"],
                         capture_output=True, text=True, check=True).stdout
    return f" {VIP}/" in out


def keepalived_pid(agent: RunningAgent) -> int | None:
    path = agent.base_path / "vrrp" / "amphora-keepalived.main.pid"
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def ours(agent: RunningAgent, lb_id: str, **changes: object) -> str:
    fields: dict[str, object] = dict(
        lb_id=lb_id, amphora_id=agent.amphora_id, role="MASTER", interface="eth1",
        virtual_router_id=11, unicast_src_ip=VRRP_IP, unicast_peers=(PEER_IP,), vip=VIP,
        vip_network="192.0.2.0/24",
        track_haproxy=HaproxyTrack(lb_id=lb_id, base_path=str(agent.base_path)))
    fields.update(changes)
    return render(VrrpInstance(**fields))  # type: ignore[arg-type]


def octavia_shaped(agent: RunningAgent, **subst: str) -> str:
    """What Octavia's keepalived template renders (VRRPv2, PASS, its check script)."""
    text = f"""vrrp_script check_script {{
  script {agent.base_path}/vrrp/check_script.sh
  interval 5
  fall 2
  rise 2
}}

vrrp_instance 0123456789abcdef0123456789abcdef {{
  state MASTER
  interface eth1
  virtual_router_id 1
  priority 100
  nopreempt
  accept
  garp_master_refresh 5
  garp_master_refresh_repeat 2
  advert_int 1
  authentication {{
    auth_type PASS
    auth_pass 0123abcd
  }}

  unicast_src_ip {VRRP_IP}
  unicast_peer {{
    {PEER_IP}
  }}

  virtual_ipaddress {{
    {VIP}
  }}

  virtual_routes {{
    192.0.2.0/24 dev eth1 src {VIP} scope link table 1
  }}

  virtual_rules {{
    from {VIP}/32 table 1 priority 100
  }}

  track_script {{
    check_script
  }}
}}
"""
    for old, new in subst.items():
        text = text.replace(old, new)
    return text


def start_haproxy(agent: RunningAgent, lb_id: str) -> int:
    cfg = OctaviaStyleConfig(
        amphora_id=agent.amphora_id, lb_id=lb_id, listener_id=str(uuid.uuid4()),
        pool_id=str(uuid.uuid4()), base_path=str(agent.base_path),
        bind=f"127.0.0.1:{free_port()}", body="ok")
    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, lb_id, cfg.render())
        client.lb_action(lb_id, "start")
    return int((agent.base_path / lb_id / "haproxy.pid").read_text().split()[0])


def test_vip_follows_this_amphoras_haproxy(agent: RunningAgent, lb_namespace: str) -> None:
    lb_id = str(uuid.uuid4())
    haproxy = start_haproxy(agent, lb_id)
    with agent.client() as client:
        etag = client.upload_vrrp(ours(agent, lb_id))
        assert len(etag) == 32
        config = agent.base_path / CONFIG
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        client.vrrp_action("start")
        assert wait_for(lambda: vip_present(lb_namespace))
        # HAProxy dies: the VIP goes without waiting for any check interval.
        os.kill(haproxy, signal.SIGKILL)
        assert wait_for(lambda: not vip_present(lb_namespace), timeout=3.0)


def test_start_of_running_reloads_and_stop_releases(agent: RunningAgent,
                                                    lb_namespace: str) -> None:
    lb_id = str(uuid.uuid4())
    start_haproxy(agent, lb_id)
    with agent.client() as client:
        client.upload_vrrp(ours(agent, lb_id, track_haproxy=None))
        assert client.vrrp_action("START")["details"] == "keepalived started"
        assert wait_for(lambda: vip_present(lb_namespace))
        pid = keepalived_pid(agent)
        assert pid is not None
        # a second start is a reload: the same process re-reads its config
        client.upload_vrrp(ours(agent, lb_id, track_haproxy=None, vip_gateway="192.0.2.1"))
        client.vrrp_action("start")
        assert keepalived_pid(agent) == pid
        assert wait_for(lambda: "default via 192.0.2.1" in subprocess.run(
            ["ip", "-n", lb_namespace, "route", "show", "table", "1"],
            capture_output=True, text=True, check=True).stdout)
        client.vrrp_action("reload")
        assert keepalived_pid(agent) == pid
        client.vrrp_action("stop")
        assert keepalived_pid(agent) is None
        assert not vip_present(lb_namespace)  # a clean stop releases the VIP


def test_octavia_rendered_config_is_accepted_and_runs(agent: RunningAgent,
                                                      lb_namespace: str) -> None:
    with agent.client() as client:
        client.upload_vrrp(octavia_shaped(agent))
        script = agent.base_path / "vrrp" / "check_script.sh"
        assert stat.S_IMODE(script.stat().st_mode) == 0o755
        client.vrrp_action("start")
        assert wait_for(lambda: vip_present(lb_namespace), timeout=15.0)
        rules = subprocess.run(["ip", "-n", lb_namespace, "rule"], capture_output=True,
                               text=True, check=True).stdout
        assert f"from {VIP} lookup 1" in rules


@pytest.mark.parametrize(("change", "expect"), [
    ({"/vrrp/check_script.sh": "/../../../../usr/bin/id"}, "plain components"),
    ({"  interval 5\n": "  interval 5\n}\nvrrp_script x {\n  script /bin/sh\n"},
     "outside the agent's check-script"),
    ({"  fall 2\n": "  fall 2\n}\ninclude /etc/passwd\nvrrp_script y {\n"}, "include is not"),
    ({"advert_int 1\n": "advert_int 1\n  notify_master \"/tmp/x.sh arg\"\n"},
     "outside the agent's check-script"),
    ({"advert_int 1\n": "advert_int 1x\n"}, "invalid number"),
    ({"nopreempt\n": "nopreemptx\n"}, "Unknown keyword"),
    ({"interface eth1": "interface eth9"}, "eth9"),
])
def test_refused_upload_leaves_the_installed_config(agent: RunningAgent, change: dict[str, str],
                                                    expect: str) -> None:
    with agent.client() as client:
        good = octavia_shaped(agent)
        client.upload_vrrp(good)
        with pytest.raises(BadRequest) as err:
            client.upload_vrrp(octavia_shaped(agent, **change))
        assert expect in str(err.value.body)
        assert (agent.base_path / CONFIG).read_text() == good
        leftovers = [p.name for p in (agent.base_path / "vrrp").iterdir()
                     if p.name.endswith(".new")]
        assert leftovers == []


def test_unknown_action_and_start_without_config(agent: RunningAgent) -> None:
    with agent.client() as client:
        with pytest.raises(BadRequest):
            client.vrrp_action("start")
        with pytest.raises(BadRequest):
            client.vrrp_action("restart")


def test_haproxy_reload_keeps_the_vip(agent: RunningAgent, lb_namespace: str) -> None:
    """HAProxy's master re-executes itself on reload; the track must not see
    that as HAProxy dying (no FAULT, no failover on every config change)."""
    lb_id = str(uuid.uuid4())
    start_haproxy(agent, lb_id)
    with agent.client() as client:
        client.upload_vrrp(ours(agent, lb_id))
        client.vrrp_action("start")
        assert wait_for(lambda: vip_present(lb_namespace))
        faults: list[float] = []
        for _ in range(3):
            client.lb_action(lb_id, "reload")
            if wait_for(lambda: not vip_present(lb_namespace), timeout=0.5):
                faults.append(time.monotonic())
        assert faults == []
