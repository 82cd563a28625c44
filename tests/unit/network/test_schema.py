"""Body schemas: typed values out, 400 for anything unknown, malformed or unbounded."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from amphora_agent.errors import InvalidRequest
from amphora_agent.network import schema

MAC = "fa:16:3e:12:34:56"


def vip_body(**extra: Any) -> dict[str, Any]:
    body = {"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1", "mac_address": MAC,
            "vrrp_ip": "203.0.113.4", "mtu": 1450,
            "host_routes": [{"destination": "192.0.2.0/24", "nexthop": "203.0.113.254"}],
            "additional_vips": [{"ip_address": "2001:db8:203::5",
                                 "subnet_cidr": "2001:db8:203::/64",
                                 "gateway": "2001:db8:203::1", "host_routes": []}],
            "is_sriov": False}
    body.update(extra)
    return body


def test_full_vip_body_parses_into_typed_values() -> None:
    plug = schema.parse_vip_plug("203.0.113.5", vip_body(mac_address="FA:16:3E:12:34:56"))
    assert plug.mac_address == MAC
    assert plug.vip.address == ipaddress.ip_address("203.0.113.5")
    assert plug.vip.cidr == ipaddress.ip_network("203.0.113.0/24")
    assert plug.vips[1].address == ipaddress.ip_address("2001:db8:203::5")
    assert plug.vrrp_ip == ipaddress.ip_address("203.0.113.4")
    assert plug.mtu == 1450
    assert plug.vip.host_routes[0].nexthop == ipaddress.ip_address("203.0.113.254")


def test_minimal_vip_body_with_nulls() -> None:
    plug = schema.parse_vip_plug("203.0.113.5", {
        "subnet_cidr": "203.0.113.0/24", "gateway": None, "mac_address": MAC,
        "vrrp_ip": None, "mtu": None, "host_routes": None, "additional_vips": None})
    assert plug.vip.gateway is None and plug.vips == (plug.vip,) and plug.mtu is None


@pytest.mark.parametrize("vip, changes", [
    ("203.0.113.5", {"unknown": 1}),
    ("203.0.113.5", {"subnet_cidr": None}),
    ("203.0.113.5", {"subnet_cidr": "203.0.113.0/24\n"}),
    ("203.0.113.5", {"gateway": "203.0.113.1 dev lo"}),
    ("203.0.113.5", {"gateway": "2001:db8::1"}),
    ("203.0.113.5", {"mac_address": "fa:16:3e:12:34"}),
    ("203.0.113.5", {"mac_address": "01:00:5e:00:00:01"}),
    ("203.0.113.5", {"mac_address": 12}),
    ("203.0.113.5", {"vrrp_ip": "198.51.100.4"}),
    ("203.0.113.5", {"vrrp_ip": "203.0.113.5"}),
    ("203.0.113.5", {"mtu": 67}),
    ("203.0.113.5", {"mtu": True}),
    ("203.0.113.5", {"mtu": 1000}),  # below IPv6's minimum with an IPv6 VIP
    ("203.0.113.5", {"is_sriov": 1}),
    ("203.0.113.5", {"host_routes": {"destination": "x"}}),
    ("203.0.113.5", {"host_routes": [{"destination": "192.0.2.0/24"}]}),
    ("203.0.113.5", {"host_routes": [{"destination": "192.0.2.0/24",
                                      "nexthop": "2001:db8::1"}]}),
    ("203.0.113.5", {"host_routes": [{"destination": "192.0.2.0/24",
                                      "nexthop": "203.0.113.1"}] * 65}),
    ("203.0.113.5", {"additional_vips": [{"ip_address": "2001:db8:1::5",
                                          "subnet_cidr": "2001:db8:203::/64"}]}),
    ("203.0.113.5", {"additional_vips": [{"ip_address": "2001:db8:203::5"}]}),
    ("203.0.113.5", {"additional_vips": [{"ip_address": f"2001:db8:203::{i:x}",
                                          "subnet_cidr": "2001:db8:203::/64"}
                                         for i in range(1, 18)]}),
    ("198.51.100.5", {}),
    ("not-an-ip", {}),
    ("203.0.113.5", {"subnet_cidr": "x" * 500}),
])
def test_bad_vip_bodies(vip: str, changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        schema.parse_vip_plug(vip, vip_body(**changes))


@pytest.mark.parametrize("body", [None, [], "text", 5, {}])
def test_vip_body_must_be_an_object_with_required_keys(body: Any) -> None:
    with pytest.raises(InvalidRequest):
        schema.parse_vip_plug("203.0.113.5", body)


def test_network_body_and_vip_net_info() -> None:
    plug = schema.parse_network_plug({
        "mac_address": MAC, "mtu": 1500, "is_sriov": False,
        "fixed_ips": [{"ip_address": "198.51.100.7", "subnet_cidr": "198.51.100.0/24",
                       "gateway": "198.51.100.1", "host_routes": []},
                      {"ip_address": "203.0.113.9", "subnet_cidr": "203.0.113.0/24"}],
        "vip_net_info": {"vip": "203.0.113.5", "subnet_cidr": "203.0.113.0/24",
                         "gateway": "203.0.113.1", "vrrp_ip": "203.0.113.9"}})
    assert [str(f.address) for f in plug.fixed_ips] == ["198.51.100.7", "203.0.113.9"]
    info = plug.vip_net_info
    assert info is not None and str(info.vip.address) == "203.0.113.5"
    # The VRRP address is not repeated as an extra address; the member IP is.
    assert [str(e.address) for e in info.extra_addresses] == ["198.51.100.7"]
    assert info.mtu == 1500


@pytest.mark.parametrize("body", [
    {"fixed_ips": []},
    {"mac_address": MAC, "fixed_ips": [{"ip_address": "198.51.100.7"}]},
    {"mac_address": MAC, "fixed_ips": [{"ip_address": "198.51.100.7",
                                        "subnet_cidr": "203.0.113.0/24"}]},
    {"mac_address": MAC, "fixed_ips": [{"ip_address": f"198.51.100.{i}",
                                        "subnet_cidr": "198.51.100.0/24"}
                                       for i in range(1, 34)]},
    {"mac_address": MAC, "vip_net_info": {"vip": "203.0.113.5"}},
    {"mac_address": MAC, "vip_net_info": {"vip": "203.0.113.5", "subnet_cidr":
                                          "203.0.113.0/24", "mac_address": "fa:16:3e:0:0:1"}},
    {"mac_address": MAC, "extra": True},
])
def test_bad_network_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        schema.parse_network_plug(body)


def test_rules_parse_and_normalise() -> None:
    rules = schema.parse_rules([
        {"protocol": "TCP", "cidr": "192.0.2.0/24", "port": 80},
        {"protocol": "udp", "cidr": None, "port": 53},
        {"protocol": "SCTP", "cidr": "2001:db8::/32", "port": 9000},
        {"protocol": "VRRP", "cidr": None, "port": 112}])
    assert [r.protocol for r in rules] == ["TCP", "UDP", "SCTP", "vrrp"]
    assert rules[0].cidr == ipaddress.ip_network("192.0.2.0/24")
    assert rules[3].port is None


@pytest.mark.parametrize("body", [
    {"protocol": "TCP", "cidr": None, "port": 80},
    [{"protocol": "ICMP", "cidr": None, "port": 1}],
    [{"protocol": "TCP", "cidr": None, "port": 0}],
    [{"protocol": "TCP", "cidr": None}],
    [{"protocol": "TCP", "cidr": None, "port": "80"}],
    [{"protocol": "TCP", "cidr": "192.0.2.0/24 accept", "port": 80}],
    [{"protocol": "TCP", "cidr": None, "port": 80, "iifname": "lo"}],
    [{"protocol": "TCP", "cidr": None, "port": 80}] * (schema.MAX_RULES + 1),
])
def test_bad_rules(body: Any) -> None:
    with pytest.raises(InvalidRequest):
        schema.parse_rules(body)
