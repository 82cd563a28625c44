"""Schemas of the plug and rules bodies, parsed into typed values before anything changes.

Every key is known (unknown keys are rejected), every address is parsed with
:mod:`ipaddress`, MACs are normalised and lists are bounded, so what reaches
netlink or nftables is built from parsed values only, never from request text.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from amphora_agent.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOST_ROUTES = 64
MAX_ADDITIONAL_VIPS = 16
MAX_FIXED_IPS = 32
MAX_RULES = 1024
MIN_MTU, MIN_MTU_V6, MAX_MTU = 68, 1280, 65535
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_MAX_TEXT = 64
PROTOCOLS = ("TCP", "UDP", "SCTP", "vrrp")

T = TypeVar("T")


# -- primitives ------------------------------------------------------------------

def _fail(path: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: {problem}")


def _object(value: Any, path: str, required: tuple[str, ...],
            optional: tuple[str, ...] = ()) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "expected a JSON object")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise _fail(path, f"unknown key(s) {', '.join(map(repr, unknown[:5]))}")
    missing = [key for key in required if key not in value]
    if missing:
        raise _fail(path, f"missing key(s) {', '.join(map(repr, missing))}")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise _fail(path, f"expected a non-empty string of at most {_MAX_TEXT} characters")
    return value


def ip(value: Any, path: str) -> IPAddress:
    try:
        return ipaddress.ip_address(_text(value, path))
    except ValueError:
        raise _fail(path, f"{value!r} is not an IP address") from None


def network(value: Any, path: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(_text(value, path), strict=False)
    except ValueError:
        raise _fail(path, f"{value!r} is not a CIDR") from None


def mac(value: Any, path: str) -> str:
    text = _text(value, path).lower()
    if not _MAC.fullmatch(text):
        raise _fail(path, f"{value!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    if int(text[:2], 16) & 1 or text == "00:00:00:00:00:00":
        raise _fail(path, f"{value!r} is not a unicast MAC address")
    return text


def _int(value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(path, f"expected an integer in {lo}..{hi}")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, "expected true or false")
    return value


def _list(value: Any, path: str, limit: int, item: Callable[[Any, str], T]) -> tuple[T, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(path, "expected a list")
    if len(value) > limit:
        raise _fail(path, f"at most {limit} entries allowed")
    return tuple(item(entry, f"{path}[{i}]") for i, entry in enumerate(value))


def _optional(value: Any, path: str, parse: Callable[[Any, str], T]) -> T | None:
    return None if value is None else parse(value, path)


def _same_family(path: str, *values: IPAddress | IPNetwork | None) -> None:
    versions = {v.version for v in values if v is not None}
    if len(versions) > 1:
        raise _fail(path, "mixes IPv4 and IPv6")


def _inside(address: IPAddress, subnet: IPNetwork, path: str) -> None:
    _same_family(path, address, subnet)
    if address not in subnet:
        raise _fail(path, f"{address} is not inside {subnet}")


# -- values ----------------------------------------------------------------------

@dataclass(frozen=True)
class HostRoute:
    destination: IPNetwork
    nexthop: IPAddress


def host_route(value: Any, path: str) -> HostRoute:
    body = _object(value, path, ("destination", "nexthop"))
    route = HostRoute(network(body["destination"], f"{path}.destination"),
                      ip(body["nexthop"], f"{path}.nexthop"))
    _same_family(path, route.destination, route.nexthop)
    return route


@dataclass(frozen=True)
class Subnet:
    """One address on a subnet with its gateway and host routes."""

    address: IPAddress
    cidr: IPNetwork
    gateway: IPAddress | None
    host_routes: tuple[HostRoute, ...] = ()


def _subnet(address: IPAddress, body: Mapping[str, Any], path: str,
            cidr_key: str = "subnet_cidr") -> Subnet:
    cidr = network(body[cidr_key], f"{path}.{cidr_key}")
    _inside(address, cidr, path)
    gateway = _optional(body.get("gateway"), f"{path}.gateway", ip)
    _same_family(f"{path}.gateway", cidr, gateway)
    routes = _list(body.get("host_routes"), f"{path}.host_routes", MAX_HOST_ROUTES, host_route)
    for i, route in enumerate(routes):
        _same_family(f"{path}.host_routes[{i}]", cidr, route.nexthop)
    return Subnet(address, cidr, gateway, routes)


def additional_vip(value: Any, path: str) -> Subnet:
    body = _object(value, path, ("ip_address", "subnet_cidr"), ("gateway", "host_routes"))
    return _subnet(ip(body["ip_address"], f"{path}.ip_address"), body, path)


def fixed_ip(value: Any, path: str) -> Subnet:
    body = _object(value, path, ("ip_address", "subnet_cidr"), ("gateway", "host_routes"))
    return _subnet(ip(body["ip_address"], f"{path}.ip_address"), body, path)


@dataclass(frozen=True)
class VipPlug:
    """``POST /1.0/plug/vip/{vip}``: the primary VIP, its extras and the VRRP address."""

    mac_address: str
    vips: tuple[Subnet, ...]  # the primary VIP first, then additional VIPs
    vrrp_ip: IPAddress | None = None
    mtu: int | None = None
    is_sriov: bool = False
    extra_addresses: tuple[Subnet, ...] = ()  # fixed IPs when a VRRP port is re-plugged

    @property
    def vip(self) -> Subnet:
        return self.vips[0]


_VIP_KEYS = ("subnet_cidr", "gateway", "mac_address")
_VIP_OPTIONAL = ("vrrp_ip", "mtu", "host_routes", "additional_vips", "is_sriov")


def _mtu(value: Any, path: str) -> int:
    return _int(value, path, MIN_MTU, MAX_MTU)


def _check_mtu(mtu: int | None, addresses: list[IPAddress], path: str) -> None:
    if mtu is not None and mtu < MIN_MTU_V6 and any(a.version == 6 for a in addresses):
        raise _fail(path, f"IPv6 needs an MTU of at least {MIN_MTU_V6}")


def _vip_plug(vip_text: Any, body: Mapping[str, Any], path: str, mac_address: str) -> VipPlug:
    primary = _subnet(ip(vip_text, "vip"), body, path)
    extras = _list(body.get("additional_vips"), f"{path}.additional_vips",
                   MAX_ADDITIONAL_VIPS, additional_vip)
    vrrp_ip = _optional(body.get("vrrp_ip"), f"{path}.vrrp_ip", ip)
    if vrrp_ip is not None:
        _inside(vrrp_ip, primary.cidr, f"{path}.vrrp_ip")
    mtu = _optional(body.get("mtu"), f"{path}.mtu", _mtu)
    vips = (primary, *extras)
    addresses = [v.address for v in vips] + ([vrrp_ip] if vrrp_ip else [])
    if len(set(addresses)) != len(addresses):
        raise _fail(path, "the same address appears twice")
    _check_mtu(mtu, addresses, f"{path}.mtu")
    return VipPlug(mac_address=mac_address, vips=vips, vrrp_ip=vrrp_ip, mtu=mtu,
                   is_sriov=_optional(body.get("is_sriov"), f"{path}.is_sriov", _bool) or False)


def parse_vip_plug(vip_text: str, body: Any) -> VipPlug:
    body = _object(body, "body", _VIP_KEYS, _VIP_OPTIONAL)
    return _vip_plug(vip_text, body, "body", mac(body["mac_address"], "body.mac_address"))


@dataclass(frozen=True)
class NetworkPlug:
    """``POST /1.0/plug/network``: a member (or VRRP) port and its fixed IPs."""

    mac_address: str
    fixed_ips: tuple[Subnet, ...] = ()
    mtu: int | None = None
    is_sriov: bool = False
    vip_net_info: VipPlug | None = None


def parse_network_plug(body: Any) -> NetworkPlug:
    body = _object(body, "body", ("mac_address",),
                   ("fixed_ips", "mtu", "is_sriov", "vip_net_info"))
    mac_address = mac(body["mac_address"], "body.mac_address")
    fixed = _list(body.get("fixed_ips"), "body.fixed_ips", MAX_FIXED_IPS, fixed_ip)
    mtu = _optional(body.get("mtu"), "body.mtu", _mtu)
    addresses = [f.address for f in fixed]
    if len(set(addresses)) != len(addresses):
        raise _fail("body.fixed_ips", "the same address appears twice")
    _check_mtu(mtu, addresses, "body.mtu")
    is_sriov = _optional(body.get("is_sriov"), "body.is_sriov", _bool) or False
    vip_info = None
    raw = body.get("vip_net_info")
    if raw is not None:
        info = _object(raw, "body.vip_net_info", ("vip", "subnet_cidr"),
                       ("gateway", "vrrp_ip", "mtu", "host_routes", "additional_vips",
                        "mac_address", "is_sriov"))
        if "mac_address" in info and mac(info["mac_address"],
                                         "body.vip_net_info.mac_address") != mac_address:
            raise _fail("body.vip_net_info.mac_address", "differs from body.mac_address")
        plug = _vip_plug(info["vip"], info, "body.vip_net_info", mac_address)
        vip_addresses = {v.address for v in plug.vips} | {plug.vrrp_ip}
        extra = tuple(f for f in fixed if f.address not in vip_addresses)
        vip_info = VipPlug(mac_address=mac_address, vips=plug.vips, vrrp_ip=plug.vrrp_ip,
                           mtu=plug.mtu if plug.mtu is not None else mtu,
                           is_sriov=plug.is_sriov or is_sriov, extra_addresses=extra)
    return NetworkPlug(mac_address=mac_address, fixed_ips=fixed, mtu=mtu, is_sriov=is_sriov,
                       vip_net_info=vip_info)


@dataclass(frozen=True)
class Rule:
    """One allowed flow on an interface: protocol, source CIDR (None: any), port."""

    protocol: str
    cidr: IPNetwork | None
    port: int | None


def rule(value: Any, path: str) -> Rule:
    body = _object(value, path, ("protocol",), ("cidr", "port"))
    raw_protocol = body["protocol"]
    protocol = next((p for p in PROTOCOLS if isinstance(raw_protocol, str)
                     and raw_protocol.lower() == p.lower()), None)
    if protocol is None:
        raise _fail(f"{path}.protocol", f"expected one of {', '.join(PROTOCOLS)}")
    cidr = _optional(body.get("cidr"), f"{path}.cidr", network)
    port = _optional(body.get("port"), f"{path}.port", lambda v, p: _int(v, p, 0, 65535))
    if protocol != "vrrp" and not port:
        raise _fail(f"{path}.port", f"{protocol} needs a port in 1..65535")
    return Rule(protocol, cidr, None if protocol == "vrrp" else port)


def parse_rules(body: Any) -> tuple[Rule, ...]:
    if not isinstance(body, list):
        raise _fail("body", "expected a JSON list of rules")
    return _list(body, "body", MAX_RULES, rule)
