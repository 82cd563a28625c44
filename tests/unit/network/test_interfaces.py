"""Interface files: desired state per topology, round trip, strict loading, 0600."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest

from amphora_agent.network import rules, schema
from amphora_agent.network.announce import arp_frame, na_message
from amphora_agent.network.interfaces import (
    InterfaceConfig,
    InterfaceFileError,
    InterfaceStore,
    PolicyRule,
    Route,
)
from amphora_agent.network.plug import network_interface, vip_interface

MAC = "fa:16:3e:12:34:56"


def _vip_plug() -> schema.VipPlug:
    return schema.parse_vip_plug("203.0.113.5", {
        "subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1", "mac_address": MAC,
        "vrrp_ip": "203.0.113.4",
        "host_routes": [{"destination": "192.0.2.0/24", "nexthop": "203.0.113.254"}],
        "additional_vips": [{"ip_address": "2001:db8:203::5",
                             "subnet_cidr": "2001:db8:203::/64",
                             "gateway": "2001:db8:203::1"}]})


def test_single_topology_owns_vips_table_and_rules() -> None:
    config = vip_interface(_vip_plug(), "eth1", "SINGLE")
    assert [str(a) for a in config.addresses] == ["203.0.113.4/24", "203.0.113.5/24",
                                                  "2001:db8:203::5/64"]
    assert PolicyRule(ipaddress.ip_network("203.0.113.5/32")) in config.rules
    assert PolicyRule(ipaddress.ip_network("2001:db8:203::5/128")) in config.rules
    table1 = {(str(r.dst), str(r.gateway)) for r in config.routes if r.table == 1}
    assert table1 == {("203.0.113.0/24", "None"), ("0.0.0.0/0", "203.0.113.1"),
                      ("192.0.2.0/24", "203.0.113.254"), ("2001:db8:203::/64", "None"),
                      ("::/0", "2001:db8:203::1")}
    assert [str(a) for a in config.announce] == ["203.0.113.5", "2001:db8:203::5"]


def test_active_standby_leaves_vips_to_keepalived() -> None:
    config = vip_interface(_vip_plug(), "eth1", "ACTIVE_STANDBY")
    assert [str(a) for a in config.addresses] == ["203.0.113.4/24"]
    assert config.rules == () and config.announce == ()
    # gateways and host routes in the main table; the on-link subnets are keepalived's
    assert {(str(r.dst), str(r.gateway), r.table) for r in config.routes} == {
        ("0.0.0.0/0", "203.0.113.1", 254), ("192.0.2.0/24", "203.0.113.254", 254),
        ("::/0", "2001:db8:203::1", 254)}
    assert [str(v) for v in config.vips] == ["203.0.113.5", "2001:db8:203::5"]


def test_member_network_has_no_default_route() -> None:
    plug = schema.parse_network_plug({"mac_address": MAC, "fixed_ips": [
        {"ip_address": "198.51.100.7", "subnet_cidr": "198.51.100.0/24",
         "gateway": "198.51.100.1",
         "host_routes": [{"destination": "10.0.0.0/8", "nexthop": "198.51.100.1"}]}]})
    config = network_interface(plug, "eth2")
    assert [str(a) for a in config.addresses] == ["198.51.100.7/24"]
    assert config.routes == (Route(ipaddress.ip_network("10.0.0.0/8"),
                                   ipaddress.ip_address("198.51.100.1"), onlink=True),)


def test_round_trip_through_the_store(tmp_path: Path) -> None:
    store = InterfaceStore(tmp_path / "interfaces")
    config = vip_interface(_vip_plug(), "eth1", "SINGLE").with_firewall(
        schema.parse_rules([{"protocol": "TCP", "cidr": "192.0.2.0/24", "port": 443},
                            {"protocol": "vrrp", "cidr": None, "port": None}]))
    store.write(config)
    store.write(InterfaceConfig(name="eth10", mac="fa:16:3e:00:00:0a"))
    store.write(InterfaceConfig(name="eth2", mac="fa:16:3e:00:00:02", mtu=9000))
    assert store.read("eth1") == config
    assert store.names() == ["eth1", "eth2", "eth10"]
    assert store.by_mac("fa:16:3e:00:00:02").mtu == 9000  # type: ignore[union-attr]
    assert os.stat(store.path("eth1")).st_mode & 0o777 == 0o600
    assert store.read("eth3") is None
    assert store.remove("eth10") and store.names() == ["eth1", "eth2"]


@pytest.mark.parametrize("tamper", [
    lambda d: d.update(name="lo"),
    lambda d: d.update(version=2),
    lambda d: d.update(extra=1),
    lambda d: d["routes"][0].update(dst="0.0.0.0/0; rm"),
    lambda d: d["addresses"][0].update(prefixlen=99),
    lambda d: d.update(mac_address="nope"),
    lambda d: d.update(firewall=[{"protocol": "TCP", "cidr": None, "port": "80"}]),
    lambda d: d["rules"][0].update(priority=0),
])
def test_tampered_files_do_not_load(tmp_path: Path, tamper) -> None:  # type: ignore[no-untyped-def]
    store = InterfaceStore(tmp_path)
    store.write(vip_interface(_vip_plug(), "eth1", "SINGLE"))
    data = json.loads(store.path("eth1").read_text())
    tamper(data)
    store.path("eth1").write_text(json.dumps(data))
    with pytest.raises(InterfaceFileError):
        store.read("eth1")


def test_store_refuses_names_that_are_not_ethn(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        InterfaceStore(tmp_path).path("../eth1")


def test_nft_ruleset_from_parsed_values() -> None:
    text = rules.render("eth1", schema.parse_rules([
        {"protocol": "TCP", "cidr": "192.0.2.0/24", "port": 443},
        {"protocol": "UDP", "cidr": "2001:db8::/32", "port": 53},
        {"protocol": "SCTP", "cidr": "0.0.0.0/0", "port": 9000},
        {"protocol": "vrrp", "cidr": None, "port": 112}]))
    assert text.startswith("table inet amphora_eth1 {}\ndelete table inet amphora_eth1\n")
    assert '    iifname != "eth1" accept' in text
    assert "    ip saddr 192.0.2.0/24 tcp dport 443 accept" in text
    assert "    ip6 saddr 2001:db8::/32 udp dport 53 accept" in text
    assert "    sctp dport 9000 accept" in text
    assert "    ip protocol vrrp accept" in text and "    ip6 nexthdr vrrp accept" in text
    assert text.rstrip().endswith("drop\n  }\n}")
    with pytest.raises(ValueError):
        rules.render("eth1;", [])


def test_announcement_packets() -> None:
    frame = arp_frame(MAC, ipaddress.IPv4Address("203.0.113.5"))
    assert frame[:6] == b"\xff" * 6 and frame[12:14] == b"\x08\x06"
    assert frame[28:32] == frame[38:42] == bytes([203, 0, 113, 5])  # sender == target IP
    message = na_message(MAC, ipaddress.IPv6Address("2001:db8:203::5"))
    assert message[0] == 136 and message[4] & 0x20  # NA with the override flag
    assert message[8:24] == ipaddress.IPv6Address("2001:db8:203::5").packed
    assert message[-6:] == bytes.fromhex("fa163e123456")
