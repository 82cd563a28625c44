"""What a plugged interface should look like, and its file under ``agent_server_network_dir``.

One JSON file per interface (``eth1.json``, ``eth2.json``, …) holds the
desired state: MAC, MTU, addresses, routes, policy rules, the addresses to
announce and the nftables rules. The plug API writes it (atomically, 0600)
before applying it, and ``amphora-interface up`` re-applies it at boot, so
what a controller plugged survives reboots. The file is parsed as strictly as
a request body: a tampered file fails to load instead of reaching netlink.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from amphora_agent import fileutil
from amphora_agent.errors import InvalidRequest
from amphora_agent.network import schema

FORMAT_VERSION = 1
MAIN_TABLE = 254
VIP_TABLE = 1
RULE_PRIORITY = 100
VIP_INTERFACE = "eth1"
_NAME = re.compile(r"^eth([1-9][0-9]{0,3})$")
KINDS = ("vip", "network")
SCOPES = ("universe", "link")


class InterfaceFileError(ValueError):
    """An interface file that does not parse; names the file and the problem."""


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def index_of(name: str) -> int:
    match = _NAME.fullmatch(name)
    if not match:
        raise ValueError(f"{name!r} is not an ethN interface name")
    return int(match.group(1))


@dataclass(frozen=True)
class Address:
    address: schema.IPAddress
    prefixlen: int

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True)
class Route:
    dst: schema.IPNetwork
    gateway: schema.IPAddress | None = None
    table: int = MAIN_TABLE
    prefsrc: schema.IPAddress | None = None
    scope: str = "universe"
    onlink: bool = False

    @property
    def key(self) -> tuple[int, int, schema.IPNetwork]:
        """Routes are unique by family, table and destination (``ip route replace``)."""
        return (self.dst.version, self.table, self.dst)


@dataclass(frozen=True)
class PolicyRule:
    src: schema.IPNetwork
    table: int = VIP_TABLE
    priority: int = RULE_PRIORITY


@dataclass(frozen=True)
class InterfaceConfig:
    name: str
    mac: str
    kind: str = "network"
    mtu: int | None = None
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[PolicyRule, ...] = ()
    announce: tuple[schema.IPAddress, ...] = ()
    vips: tuple[schema.IPAddress, ...] = ()
    is_sriov: bool = False
    firewall: tuple[schema.Rule, ...] | None = field(default=None)

    def with_firewall(self, rules: tuple[schema.Rule, ...] | None) -> InterfaceConfig:
        return replace(self, firewall=rules)

    # -- serialisation --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "name": self.name,
            "mac_address": self.mac,
            "kind": self.kind,
            "mtu": self.mtu,
            "is_sriov": self.is_sriov,
            "addresses": [{"address": str(a.address), "prefixlen": a.prefixlen}
                          for a in self.addresses],
            "routes": [{"dst": str(r.dst), "gateway": _str_or_none(r.gateway),
                        "table": r.table, "prefsrc": _str_or_none(r.prefsrc),
                        "scope": r.scope, "onlink": r.onlink} for r in self.routes],
            "rules": [{"src": str(r.src), "table": r.table, "priority": r.priority}
                      for r in self.rules],
            "announce": [str(a) for a in self.announce],
            "vips": [str(a) for a in self.vips],
            "firewall": None if self.firewall is None else [
                {"protocol": r.protocol, "cidr": _str_or_none(r.cidr), "port": r.port}
                for r in self.firewall],
        }

    @classmethod
    def from_dict(cls, data: Any) -> InterfaceConfig:
        try:
            return _from_dict(data)
        except (KeyError, TypeError, ValueError, InvalidRequest) as exc:
            raise InterfaceFileError(str(exc)) from None


def _str_or_none(value: object | None) -> str | None:
    return None if value is None else str(value)


def _exact_keys(data: Any, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TypeError(f"{what}: expected an object")
    if set(data) != keys:
        raise ValueError(f"{what}: keys {sorted(data)} != {sorted(keys)}")
    return data


def _int(value: Any, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what}: expected an integer in {lo}..{hi}")
    return value


def _opt_ip(value: Any) -> schema.IPAddress | None:
    return None if value is None else ipaddress.ip_address(value)


def _from_dict(data: Any) -> InterfaceConfig:
    data = _exact_keys(data, {"version", "name", "mac_address", "kind", "mtu", "is_sriov",
                              "addresses", "routes", "rules", "announce", "vips",
                              "firewall"}, "interface")
    if data["version"] != FORMAT_VERSION:
        raise ValueError(f"unsupported format version {data['version']!r}")
    name = data["name"]
    if not isinstance(name, str) or not valid_name(name):
        raise ValueError(f"name {name!r} is not ethN")
    if data["kind"] not in KINDS:
        raise ValueError(f"kind {data['kind']!r} is not one of {KINDS}")
    if not isinstance(data["is_sriov"], bool):
        raise TypeError("is_sriov: expected a boolean")
    addresses = []
    for item in data["addresses"]:
        item = _exact_keys(item, {"address", "prefixlen"}, "address")
        address = ipaddress.ip_address(item["address"])
        addresses.append(Address(address, _int(item["prefixlen"], 0, address.max_prefixlen,
                                               "prefixlen")))
    routes = []
    for item in data["routes"]:
        item = _exact_keys(item, {"dst", "gateway", "table", "prefsrc", "scope", "onlink"},
                           "route")
        if item["scope"] not in SCOPES or not isinstance(item["onlink"], bool):
            raise ValueError(f"route: bad scope/onlink {item['scope']!r}/{item['onlink']!r}")
        routes.append(Route(ipaddress.ip_network(item["dst"]), _opt_ip(item["gateway"]),
                            _int(item["table"], 1, 2**31 - 1, "table"),
                            _opt_ip(item["prefsrc"]), item["scope"], item["onlink"]))
    rules = []
    for item in data["rules"]:
        item = _exact_keys(item, {"src", "table", "priority"}, "rule")
        rules.append(PolicyRule(ipaddress.ip_network(item["src"]),
                                _int(item["table"], 1, 2**31 - 1, "table"),
                                _int(item["priority"], 1, 32765, "priority")))
    firewall = data["firewall"]
    return InterfaceConfig(
        name=name,
        mac=schema.mac(data["mac_address"], "mac_address"),
        kind=data["kind"],
        mtu=None if data["mtu"] is None else _int(data["mtu"], schema.MIN_MTU,
                                                  schema.MAX_MTU, "mtu"),
        addresses=tuple(addresses), routes=tuple(routes), rules=tuple(rules),
        announce=tuple(ipaddress.ip_address(a) for a in data["announce"]),
        vips=tuple(ipaddress.ip_address(a) for a in data["vips"]),
        is_sriov=data["is_sriov"],
        firewall=None if firewall is None else schema.parse_rules(firewall),
    )


class InterfaceStore:
    """The interface files of one agent: ``{directory}/ethN.json``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        if not valid_name(name):
            raise ValueError(f"{name!r} is not an ethN interface name")
        return self.directory / f"{name}.json"

    def write(self, config: InterfaceConfig) -> None:
        text = json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
        fileutil.atomic_write(self.path(config.name), text.encode("utf-8"))

    def read(self, name: str) -> InterfaceConfig | None:
        try:
            text = self.path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return InterfaceConfig.from_dict(json.loads(text))
        except (ValueError, InterfaceFileError) as exc:
            raise InterfaceFileError(f"{self.path(name)}: {exc}") from None

    def remove(self, name: str) -> bool:
        return fileutil.remove(self.path(name))

    def saved(self, name: str) -> bytes | None:
        """The file's bytes as they are now (None: no file), for :meth:`restore`."""
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None

    def restore(self, name: str, saved: bytes | None) -> None:
        """Put back what :meth:`saved` returned: a rolled-back plug leaves no trace."""
        if saved is None:
            self.remove(name)
        else:
            fileutil.atomic_write(self.path(name), saved)

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        found = [p.stem for p in self.directory.glob("eth*.json") if valid_name(p.stem)]
        return sorted(found, key=index_of)

    def __iter__(self) -> Iterator[InterfaceConfig]:
        for name in self.names():
            config = self.read(name)
            if config is not None:
                yield config

    def by_mac(self, mac: str) -> InterfaceConfig | None:
        return next((c for c in self if c.mac == mac), None)
