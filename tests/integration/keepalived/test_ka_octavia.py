"""Octavia's own controller code (``.venv-octavia``, ``make .venv-octavia``):
its keepalived template renders an ACTIVE_STANDBY config and its amphora REST
client uploads it and starts, reloads and stops keepalived on our agent, then
uploads, starts (refused here: no IPVS), lists and deletes a UDP listener.
The VIP comes up and goes, and a pair configured by it fails over."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller_stub.local_agent import Pki, RunningAgent, short_tmpdir, start_agent
from tests.integration.keepalived.conftest import PEER_IP, VIP, VRRP_IP
from tests.integration.keepalived.test_ka_agent_udp import lvs_config
from tests.support import namespaces

REPO = Path(__file__).resolve().parents[3]
OCTAVIA_PYTHON = REPO / ".venv-octavia" / "bin" / "python"
SCRIPT = Path(__file__).with_name("octavia_driver_calls.py")


def octavia(agent: RunningAgent, steps: list[str], **extra: str) -> dict:  # type: ignore[type-arg]
    assert OCTAVIA_PYTHON.exists(), "run `make .venv-octavia` (a dependency of `make test`)"
    args = {"host": agent.host, "port": agent.port, "amphora_id": agent.amphora_id,
            "peer_id": str(uuid.uuid4()), "base_path": str(agent.base_path),
            "client_cert": str(agent.pki.client_file), "server_ca": str(agent.pki.ca_file),
            "vrrp_ip": VRRP_IP, "peer_ip": PEER_IP, "vip": VIP, "cidr": "192.0.2.0/24",
            "gateway": "192.0.2.1", "steps": steps, **extra}
    args.setdefault("lb_id", str(uuid.uuid4()))
    proc = subprocess.run([str(OCTAVIA_PYTHON), str(SCRIPT), json.dumps(args)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def wait_for(condition, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def vip_present(ns: str) -> bool:
    out = subprocess.run(["ip", "-n", ns, "-o", "addr", "show", "dev", "eth1"],
                         capture_output=True, text=True, check=True).stdout
    return f" {VIP}/" in out


def test_octavia_driver_vrrp_calls(agent: RunningAgent, lb_namespace: str) -> None:
    lb_id = str(uuid.uuid4())
    out = octavia(agent, ["upload_vrrp", "start_vrrp", "reload_vrrp", "start_vrrp"],
                  lb_id=lb_id)
    assert out["upload_vrrp"] == 200
    assert out["start_vrrp"] == out["reload_vrrp"] == 202
    # What Octavia rendered is what the agent installed, check script and all.
    config = out["config"]
    assert "auth_type PASS" in config
    assert f"script {agent.base_path}/vrrp/check_script.sh" in config
    assert (agent.base_path / "vrrp" / "octavia-keepalived.conf").read_text() == config
    # Alone on its link, the amphora becomes master and raises the VIP with
    # Octavia's table-1 routes and rule.
    assert wait_for(lambda: vip_present(lb_namespace))
    table = subprocess.run(["ip", "-n", lb_namespace, "route", "show", "table", "1"],
                           capture_output=True, text=True, check=True).stdout
    assert "default via 192.0.2.1 dev eth1 proto keepalived onlink" in table
    out = octavia(agent, ["stop_vrrp"], lb_id=lb_id)
    assert out["stop_vrrp"] == 202
    assert wait_for(lambda: not vip_present(lb_namespace))


def test_octavia_driver_udp_listener_calls(agent: RunningAgent, lb_namespace: str) -> None:
    listener_id = str(uuid.uuid4())
    out = octavia(agent, ["upload_udp", "start_udp", "listeners", "delete_udp"],
                  listener_id=listener_id,
                  udp_config=lvs_config(agent, lb_namespace, listener_id))
    assert out["upload_udp"] == 200
    # No IPVS in this kernel: keepalived exits at once and the agent says so
    # (docs/keepalived.md); on an amphora with ip_vs this is a 202.
    assert out["start_udp"] == "InternalServerError"
    assert [entry["uuid"] for entry in out["listeners"]] == [listener_id]
    assert out["delete_udp"] == 200
    assert not (agent.base_path / "lvs" / f"octavia-keepalivedlvs-{listener_id}.conf").exists()


@pytest.fixture
def pair(pki: Pki) -> Iterator[tuple[tuple[RunningAgent, str], tuple[RunningAgent, str]]]:
    """Two amphorae (agent + HAProxy namespace) whose eth1 share one link."""
    with namespaces.namespace() as ns_a, namespaces.namespace() as ns_b:
        subprocess.run(["ip", "link", "add", "vrrp-a", "netns", ns_a, "type", "veth", "peer",
                        "name", "vrrp-b", "netns", ns_b], check=True)
        for ns, dev, ip in ((ns_a, "vrrp-a", VRRP_IP), (ns_b, "vrrp-b", PEER_IP)):
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "name", "eth1"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "eth1", "up"], check=True)
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth1"],
                           check=True)
        roots = [short_tmpdir(), short_tmpdir()]
        agents = [start_agent(root, pki, amphora={"namespace": ns})
                  for root, ns in zip(roots, (ns_a, ns_b), strict=True)]
        try:
            yield (agents[0], ns_a), (agents[1], ns_b)
        finally:
            for agent in agents:
                with agent.client() as client:
                    client.vrrp_action("stop")
                agent.process.stop()
            for root in roots:
                shutil.rmtree(root, ignore_errors=True)


def test_octavia_configured_pair_fails_over(pair) -> None:  # type: ignore[no-untyped-def]
    (master, ns_master), (backup, ns_backup) = pair
    lb_id = str(uuid.uuid4())
    octavia(master, ["upload_vrrp", "start_vrrp"], lb_id=lb_id, peer_id=backup.amphora_id)
    assert wait_for(lambda: vip_present(ns_master))
    octavia(backup, ["upload_vrrp", "start_vrrp"], lb_id=lb_id, peer_id=master.amphora_id,
            role="BACKUP", vrrp_ip=PEER_IP, peer_ip=VRRP_IP)
    # The backup hears the master's VRRPv2 PASS adverts and stays backup
    # (three advert intervals of 1 s would have made it master).
    assert not wait_for(lambda: vip_present(ns_backup), timeout=4.0)
    assert vip_present(ns_master)
    octavia(master, ["stop_vrrp"], lb_id=lb_id, peer_id=backup.amphora_id)
    assert wait_for(lambda: vip_present(ns_backup))
    assert not vip_present(ns_master)
