"""Interface files bring the same networks back after an agent restart or a reboot."""

from __future__ import annotations

import pytest

from controller_stub.client import Conflict
from tests.integration.network.conftest import Plugged
from tests.support.fabric import Listener, LocalFabric, fetch, probe, snapshot, vip_body

pytestmark = pytest.mark.root


def _works(plugged: Plugged, port: int) -> None:
    hap = plugged.amphora.haproxy_namespace
    for vip in (str(plugged.vip.ipv4), str(plugged.vip.ipv6)):
        with Listener(hap, vip, port, b"ok"):
            assert probe(plugged.user.namespace, vip, port) == b"ok"
    assert fetch(hap, str(plugged.member.ipv6))["member"] == "member-1"


def test_agent_restart_keeps_networks(fabric: LocalFabric, plugged: Plugged) -> None:
    hap = plugged.amphora.haproxy_namespace
    plugged.client.set_interface_rules(str(plugged.vip.ipv4),
                                       [{"protocol": "TCP", "cidr": None, "port": 9001}])
    before = snapshot(hap)
    fabric.restart_agent(plugged.amphora)
    assert snapshot(hap) == before
    with fabric.client(plugged.amphora, retries=0) as client:
        with pytest.raises(Conflict):
            client.plug_vip(str(plugged.vip.ipv4), vip_body(plugged.vip))
        assert client.get_interface(str(plugged.member_port.ipv4)) == "eth2"
    _works(plugged, 9001)


def test_reboot_restores_addresses_routes_rules(fabric: LocalFabric, plugged: Plugged) -> None:
    hap = plugged.amphora.haproxy_namespace
    plugged.client.set_interface_rules(str(plugged.vip.ipv4),
                                       [{"protocol": "TCP", "cidr": None, "port": 9002}])
    before = snapshot(hap)
    assert before["rules"] and "amphora_eth1" in before["nft"]
    result = fabric.reboot_amphora(plugged.amphora)
    assert result.returncode == 0, result.stderr
    assert "up: eth1, eth2" in result.stdout
    assert snapshot(hap) == before
    _works(plugged, 9002)
    # Running it again changes nothing (idempotent).
    assert fabric.run_interface_tool(plugged.amphora, "up", "all").returncode == 0
    assert snapshot(hap) == before


def test_interface_down_and_up(fabric: LocalFabric, plugged: Plugged) -> None:
    hap = plugged.amphora.haproxy_namespace
    before = snapshot(hap)
    down = fabric.run_interface_tool(plugged.amphora, "down", "eth2")
    assert down.returncode == 0, down.stderr
    after_down = snapshot(hap)
    assert not [a for a in after_down["addresses"] if a[0] == "eth2"]
    assert [a for a in after_down["addresses"] if a[0] == "eth1"] == \
        [a for a in before["addresses"] if a[0] == "eth1"]
    assert fabric.run_interface_tool(plugged.amphora, "up", "eth2").returncode == 0
    assert snapshot(hap) == before
    bad = fabric.run_interface_tool(plugged.amphora, "up", "eth9")
    assert bad.returncode == 1 and "eth9" in bad.stderr
