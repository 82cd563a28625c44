"""ACTIVE_STANDBY leaves the VIP to keepalived; several amphorae coexist; nothing leaks."""

from __future__ import annotations

import os

import pytest

from amphora_contract import netns
from controller_stub.compute import nsutil
from tests.support.fabric import Listener, LocalFabric, network_body, probe, snapshot, vip_body

pytestmark = pytest.mark.root


def test_active_standby_leaves_vip_and_table_to_keepalived(fabric: LocalFabric) -> None:
    amphora = fabric.create_amphora(topology="ACTIVE_STANDBY")
    try:
        port = fabric.hotplug_port(amphora, "vip")
        vrrp_ip, _ = port.network.allocate()
        with fabric.client(amphora, retries=0) as client:
            reply = client.plug_vip(str(port.ipv4), vip_body(port, vrrp_ip=str(vrrp_ip)))
            assert reply["details"] == \
                f"VIPs plugged on interface eth1: {port.ipv4}, {port.ipv6}"
            state = snapshot(amphora.haproxy_namespace)
            addresses = {a[3] for a in state["addresses"]}
            assert addresses == {str(vrrp_ip)}
            assert not [r for r in state["routes"] if r[1] == "1"]
            assert not [r for r in state["rules"] if r[4] == "1"]
            assert ("-4", "main", "default", str(port.network.gateway4), "eth1", None,
                    ("onlink",)) in state["routes"]
            # On the BACKUP the VIP is not up, yet the controller can set its rules.
            assert client.get_interface(str(port.ipv4)) == "eth1"
            client.set_interface_rules(str(port.ipv4),
                                       [{"protocol": "vrrp", "cidr": None, "port": None}])
    finally:
        fabric.delete_amphora(amphora)


def test_two_amphorae_coexist(fabric: LocalFabric) -> None:
    first, second = fabric.create_amphora(), fabric.create_amphora()
    user = fabric.create_client()
    try:
        vips = []
        for amphora in (first, second):
            port = fabric.hotplug_port(amphora, "vip")
            member = fabric.hotplug_port(amphora, "member")
            with fabric.client(amphora, retries=0) as client:
                client.plug_vip(str(port.ipv4), vip_body(port))
                assert client.plug_network(network_body(member))["details"] == \
                    "Plugged on interface eth2"
            vips.append(str(port.ipv4))
        assert first.haproxy_namespace != second.haproxy_namespace
        with Listener(first.haproxy_namespace, vips[0], 7000, b"one"), \
                Listener(second.haproxy_namespace, vips[1], 7000, b"two"):
            assert probe(user.namespace, vips[0], 7000) == b"one"
            assert probe(user.namespace, vips[1], 7000) == b"two"
    finally:
        fabric.delete_endpoint(user)
        fabric.delete_amphora(first)
        fabric.delete_amphora(second)
    for amphora in (first, second):
        assert not netns.exists(amphora.namespace)
        assert not netns.exists(amphora.haproxy_namespace)


def test_teardown_leaves_nothing(tmp_path) -> None:
    fabric = LocalFabric(tmp_path / "fab")
    try:
        amphora = fabric.create_amphora()
        port = fabric.hotplug_port(amphora, "vip")
        with fabric.client(amphora, retries=0) as client:
            client.plug_vip(str(port.ipv4), vip_body(port))
        member = fabric.create_member()
        fabric.create_client()
        names = fabric.leftovers()
        assert amphora.haproxy_namespace in names and member.namespace in names
        pids = [amphora.process.pid, member.process.pid]  # type: ignore[union-attr]
    finally:
        fabric.teardown()
    assert fabric.leftovers() == []
    assert nsutil.listed(fabric.prefix) == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
