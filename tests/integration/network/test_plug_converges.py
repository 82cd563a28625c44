"""Plugging converges, on the real fabric: a plug the kernel refuses half-way
leaves the amphora as it was, a repeat completes a plug cut short, and the
management NIC never leaves the agent's namespace."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amphora_contract import netns
from controller_stub.client import BadRequest, Conflict, InternalServerError
from controller_stub.compute.local import Amphora, FabricAgentClient, Port
from tests.support.fabric import (
    Listener,
    LocalFabric,
    network_body,
    probe,
    snapshot,
    vip_body,
)

pytestmark = pytest.mark.root


def _ip(namespace: str, *args: str) -> Any:
    with netns.entered(namespace):
        out = subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


def _run(namespace: str, *argv: str) -> None:
    with netns.entered(namespace):
        subprocess.run(list(argv), check=True, capture_output=True)


def _link(namespace: str, mac: str) -> dict[str, Any] | None:
    """The NIC with ``mac`` in ``namespace``: name, MTU, state and global addresses."""
    for link in _ip(namespace, "addr"):
        if link.get("address") == mac:
            return {"ifname": link["ifname"], "mtu": link["mtu"],
                    "up": "UP" in link.get("flags", []),
                    "addresses": sorted(a["local"] for a in link.get("addr_info", [])
                                        if a.get("scope") == "global")}
    return None


def _interface_files(amphora: Amphora) -> list[str]:
    directory = Path(amphora.root) / "interfaces"
    return sorted(p.name for p in directory.glob("*.json")) if directory.is_dir() else []


@pytest.fixture
def haproxy_namespace(amphora: Amphora) -> Iterator[str]:
    """The amphora's HAProxy namespace, made before the first plug (as the
    boot's namespace unit does), so a test can set the kernel's mind in it."""
    name = amphora.haproxy_namespace
    if not netns.exists(name):
        subprocess.run(["ip", "netns", "add", name], check=True)
    yield name


def _refuse_ipv6(namespace: str, refuse: bool) -> None:
    """NICs moved into ``namespace`` from now on refuse (or take) IPv6 addresses."""
    _run(namespace, "sysctl", "-qw",
         f"net.ipv6.conf.default.disable_ipv6={1 if refuse else 0}")


def _serves_vip(fabric: LocalFabric, amphora: Amphora, vip: Port, port: int) -> None:
    user = fabric.create_client("client")
    try:
        for address in (str(vip.ipv4), str(vip.ipv6)):
            with Listener(amphora.haproxy_namespace, address, port, b"vip"):
                assert probe(user.namespace, address, port) == b"vip"
    finally:
        fabric.delete_endpoint(user)


def test_a_plug_refused_half_way_rolls_back_and_its_repeat_completes(
        fabric: LocalFabric, amphora: Amphora, client: FabricAgentClient,
        haproxy_namespace: str) -> None:
    vip = fabric.hotplug_port(amphora, "vip")
    before_nic = _link(amphora.namespace, vip.mac)
    assert before_nic is not None
    before_files = _interface_files(amphora)
    before_haproxy = snapshot(haproxy_namespace)
    before_agent = snapshot(amphora.namespace)

    # The IPv4 VIP goes on, then the kernel refuses the IPv6 one.
    _refuse_ipv6(haproxy_namespace, True)
    with pytest.raises(InternalServerError):
        client.plug_vip(str(vip.ipv4), vip_body(vip))

    assert _link(amphora.namespace, vip.mac) == before_nic
    assert _link(haproxy_namespace, vip.mac) is None
    assert _interface_files(amphora) == before_files
    assert snapshot(haproxy_namespace) == before_haproxy
    assert snapshot(amphora.namespace) == before_agent

    # The same plug again, once the kernel takes it: plugged, not a conflict.
    _refuse_ipv6(haproxy_namespace, False)
    reply = client.plug_vip(str(vip.ipv4), vip_body(vip))
    assert reply["details"] == f"VIPs plugged on interface eth1: {vip.ipv4}, {vip.ipv6}"
    assert _interface_files(amphora) == [*before_files, "eth1.json"]
    _serves_vip(fabric, amphora, vip, 8090)


def test_a_repeat_completes_a_plug_cut_short(fabric: LocalFabric, amphora: Amphora,
                                             client: FabricAgentClient,
                                             haproxy_namespace: str) -> None:
    """An agent restarted in the middle of a plug left the NIC moved, with half
    its addresses: the controller's retry of the same plug completes it, and
    a further identical plug is the conflict Octavia's controller expects."""
    vip = fabric.hotplug_port(amphora, "vip")
    cut_short = _link(amphora.namespace, vip.mac)
    assert cut_short is not None
    _run(amphora.namespace, "ip", "link", "set", cut_short["ifname"], "netns",
         haproxy_namespace, "name", "eth1")
    _run(haproxy_namespace, "ip", "addr", "add", f"{vip.ipv4}/{vip.network.ipv4.prefixlen}",
         "dev", "eth1")

    reply = client.plug_vip(str(vip.ipv4), vip_body(vip))
    assert reply["details"] == f"VIPs plugged on interface eth1: {vip.ipv4}, {vip.ipv6}"
    plugged = _link(haproxy_namespace, vip.mac)
    assert plugged is not None
    assert plugged["up"] and plugged["addresses"] == sorted([str(vip.ipv4), str(vip.ipv6)])
    rules = snapshot(haproxy_namespace)["rules"]
    assert any(rule[2] == str(vip.ipv4) and rule[4] == "1" for rule in rules), rules
    _serves_vip(fabric, amphora, vip, 8091)

    state = snapshot(haproxy_namespace)
    with pytest.raises(Conflict):
        client.plug_vip(str(vip.ipv4), vip_body(vip))
    assert snapshot(haproxy_namespace) == state


def test_the_management_nic_is_never_plugged(fabric: LocalFabric, amphora: Amphora,
                                             client: FabricAgentClient) -> None:
    management = _ip(amphora.namespace, "link", "show", "eth0")[0]["address"]
    vip = fabric.hotplug_port(amphora, "vip")
    body = vip_body(vip, mac_address=management)
    with pytest.raises(BadRequest) as err:
        client.plug_vip(str(vip.ipv4), body)
    assert "management" in err.value.body["details"]
    with pytest.raises(BadRequest):
        client.plug_network({"mac_address": management, "fixed_ips": []})
    nic = _link(amphora.namespace, management)
    assert nic is not None and nic["ifname"] == "eth0" and nic["up"]
    assert str(amphora.mgmt_ip) in nic["addresses"]
    assert client.info()["api_version"] == "1.0"


def test_a_nic_carrying_the_agents_default_route_is_never_plugged(
        fabric: LocalFabric, amphora: Amphora, client: FabricAgentClient) -> None:
    """Where the controller reaches the agent through a default route, that
    route's NIC is the management NIC too."""
    port = fabric.hotplug_port(amphora, "vip")
    nic = _link(amphora.namespace, port.mac)
    assert nic is not None
    _run(amphora.namespace, "ip", "link", "set", nic["ifname"], "up")
    _run(amphora.namespace, "ip", "route", "add", "default", "dev", nic["ifname"])
    with pytest.raises(BadRequest):
        client.plug_vip(str(port.ipv4), vip_body(port))
    assert _link(amphora.namespace, port.mac) == {**nic, "up": True}
    _run(amphora.namespace, "ip", "route", "del", "default")
    assert client.plug_vip(str(port.ipv4), vip_body(port))["details"].startswith(
        "VIPs plugged on interface eth1")


def test_a_refused_replug_goes_back_to_the_previous_config(
        fabric: LocalFabric, amphora: Amphora, client: FabricAgentClient) -> None:
    port = fabric.hotplug_port(amphora, "member")
    body = network_body(port)
    ipv4_only = {**body, "fixed_ips": body["fixed_ips"][:1]}
    assert client.plug_network(ipv4_only)["details"] == "Plugged on interface eth2"
    hap = amphora.haproxy_namespace
    _run(hap, "sysctl", "-qw", "net.ipv6.conf.eth2.disable_ipv6=1")
    interface_file = Path(amphora.root) / "interfaces" / "eth2.json"
    before_file = interface_file.read_bytes()
    before = snapshot(hap)

    # One more IPv4 address with a host route goes on, then the IPv6 one is refused.
    extra = port.network.allocate()[0]
    grown = {**body, "fixed_ips": [
        body["fixed_ips"][0],
        {"ip_address": str(extra), "subnet_cidr": str(port.network.ipv4), "gateway": None,
         "host_routes": [{"destination": "198.51.100.128/25", "nexthop": "198.51.100.1"}]},
        body["fixed_ips"][1]]}
    with pytest.raises(InternalServerError):
        client.plug_network(grown)
    assert snapshot(hap) == before
    assert interface_file.read_bytes() == before_file

    _run(hap, "sysctl", "-qw", "net.ipv6.conf.eth2.disable_ipv6=0")
    assert client.plug_network(grown)["details"] == "Updated existing interface eth2"
    addresses = _link(hap, port.mac)
    assert addresses is not None
    assert {str(port.ipv4), str(extra), str(port.ipv6)} <= set(addresses["addresses"])
