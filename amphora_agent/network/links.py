"""Netlink side of plugging: find a NIC by MAC, move it, converge it to its config.

Everything runs in the calling thread with :func:`amphora_contract.netns.entered`
and an ``IPRoute`` created inside the block, so no helper process is forked
per request. Applying is idempotent: addresses and rules are added only when
missing, routes are replaced, and only what a previous config of the same
interface added is removed (keepalived's VIP in ACTIVE_STANDBY stays).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amphora_agent.network import netlink, schema
from amphora_agent.network.interfaces import Address, InterfaceConfig, PolicyRule, Route
from amphora_contract import netns

if TYPE_CHECKING:
    from pyroute2 import IPRoute

LOG = logging.getLogger(__name__)

RTNH_F_ONLINK = 4
IFA_F_NODAD = 0x02
RTPROT_STATIC = 4
IFF_UP = 0x1
SCOPES = {"universe": 0, "link": 253}
_GONE = (errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL, errno.ENODEV)


class LinkError(RuntimeError):
    """Netlink refused a change; the message says which."""


def _family(version: int) -> int:
    return 10 if version == 6 else 2


def _find(ipr: IPRoute, mac: str) -> Any | None:
    for link in ipr.get_links():
        if (link.get("IFLA_ADDRESS") or "").lower() == mac and link.get("IFLA_IFNAME") != "lo":
            return link
    return None


def macs(namespace: str | None = None) -> dict[str, str]:
    """``{mac: ifname}`` of the links in ``namespace`` (None: this thread's own)."""
    def collect() -> dict[str, str]:
        with netlink.IPRoute() as ipr:
            return {(link.get("IFLA_ADDRESS") or "").lower(): link.get("IFLA_IFNAME")
                    for link in ipr.get_links() if link.get("IFLA_IFNAME") != "lo"}
    if namespace is None:
        return collect()
    with netns.entered(namespace):
        return collect()


def move(mac: str, namespace: str, name: str) -> bool:
    """Move the NIC with ``mac`` from this thread's namespace into ``namespace`` as ``name``.

    Returns False when no such NIC is here (not attached yet, or already moved).
    """
    with netlink.IPRoute() as ipr:
        link = _find(ipr, mac)
        if link is None:
            return False
        try:
            ipr.link("set", index=link["index"], net_ns_fd=namespace, ifname=name)
        except netlink.NetlinkError as exc:
            raise LinkError(f"cannot move {mac} into {namespace} as {name}: {exc}") from None
    LOG.info("moved %s (%s) into %s as %s", mac, link.get("IFLA_IFNAME"), namespace, name)
    return True


def _route_args(route: Route, index: int) -> dict[str, Any]:
    args: dict[str, Any] = {"dst": str(route.dst), "oif": index, "table": route.table,
                            "family": _family(route.dst.version), "proto": RTPROT_STATIC,
                            "scope": SCOPES[route.scope]}
    if route.gateway is not None:
        args["gateway"] = str(route.gateway)
    if route.onlink:
        args["flags"] = RTNH_F_ONLINK
    if route.prefsrc is not None:
        args["prefsrc"] = str(route.prefsrc)
    return args


def _rule_args(rule: PolicyRule) -> dict[str, Any]:
    return {"src": str(rule.src.network_address), "src_len": rule.src.prefixlen,
            "table": rule.table, "priority": rule.priority,
            "family": _family(rule.src.version)}


def _current_addresses(ipr: IPRoute, index: int) -> set[Address]:
    found = set()
    for msg in ipr.get_addr(index=index):
        if msg["scope"] != 0:  # keep link-local and host scope out of it
            continue
        found.add(Address(ipaddress.ip_address(msg.get("IFA_ADDRESS")), msg["prefixlen"]))
    return found


def _current_rules(ipr: IPRoute) -> set[PolicyRule]:
    found = set()
    for family in (2, 10):
        for msg in ipr.get_rules(family=family):
            src = msg.get("FRA_SRC")
            if not src:
                continue
            table = msg.get("FRA_TABLE") or msg["table"]
            found.add(PolicyRule(ipaddress.ip_network(f"{src}/{msg['src_len']}"), table,
                                 msg.get("FRA_PRIORITY") or 0))
    return found


def _ignore_gone(action: str, call: Any, **kwargs: Any) -> None:
    try:
        call(action, **kwargs)
    except netlink.NetlinkError as exc:
        if exc.code not in _GONE:
            raise


def configure(namespace: str, config: InterfaceConfig,
              previous: InterfaceConfig | None = None) -> None:
    """Converge ``config.name`` inside ``namespace`` to ``config``."""
    with netns.entered(namespace), netlink.IPRoute() as ipr:
        link = _find(ipr, config.mac)
        if link is None:
            raise LinkError(f"no interface with MAC {config.mac} in {namespace}")
        index = link["index"]
        try:
            if link.get("IFLA_IFNAME") != config.name:
                ipr.link("set", index=index, state="down")
                ipr.link("set", index=index, ifname=config.name)
            changes: dict[str, Any] = {"state": "up"}
            if config.mtu is not None:
                changes["mtu"] = config.mtu
            ipr.link("set", index=index, **changes)
            _converge_addresses(ipr, index, config, previous)
            _converge_routes(ipr, index, config, previous)
            _converge_rules(ipr, config, previous)
        except netlink.NetlinkError as exc:
            raise LinkError(f"{config.name} in {namespace}: {exc}") from None


def _converge_addresses(ipr: IPRoute, index: int, config: InterfaceConfig,
                        previous: InterfaceConfig | None) -> None:
    current = _current_addresses(ipr, index)
    stale = set(previous.addresses) - set(config.addresses) if previous else set()
    for address in stale & current:
        _ignore_gone("del", ipr.addr, index=index, address=str(address.address),
                     prefixlen=address.prefixlen)
    for address in config.addresses:
        if address in current:
            continue
        extra = {"flags": IFA_F_NODAD} if address.address.version == 6 else {}
        try:
            ipr.addr("add", index=index, address=str(address.address),
                     prefixlen=address.prefixlen, **extra)
        except netlink.NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise


def _converge_routes(ipr: IPRoute, index: int, config: InterfaceConfig,
                     previous: InterfaceConfig | None) -> None:
    keys = {route.key for route in config.routes}
    for route in previous.routes if previous else ():
        if route.key not in keys:
            args = _route_args(route, index)
            _ignore_gone("del", ipr.route, **{k: v for k, v in args.items()
                                              if k in ("dst", "table", "family", "oif")})
    # Subnet routes first: an on-link gateway route needs nothing, but a
    # route with prefsrc needs its address, which is already there.
    for route in sorted(config.routes, key=lambda r: r.gateway is not None):
        ipr.route("replace", **_route_args(route, index))


def _converge_rules(ipr: IPRoute, config: InterfaceConfig,
                    previous: InterfaceConfig | None) -> None:
    current = _current_rules(ipr)
    wanted = set(config.rules)
    for rule in (set(previous.rules) - wanted) if previous else ():
        if rule in current:
            _ignore_gone("del", ipr.rule, **_rule_args(rule))
    for rule in config.rules:
        if rule not in current:
            ipr.rule("add", **_rule_args(rule))


def deconfigure(namespace: str, config: InterfaceConfig) -> bool:
    """Remove what ``config`` added and set the link down; False if it is not there."""
    with netns.entered(namespace), netlink.IPRoute() as ipr:
        link = _find(ipr, config.mac)
        current_rules = _current_rules(ipr)
        for rule in config.rules:
            if rule in current_rules:
                _ignore_gone("del", ipr.rule, **_rule_args(rule))
        if link is None:
            return False
        index = link["index"]
        for route in config.routes:
            args = _route_args(route, index)
            _ignore_gone("del", ipr.route, **{k: v for k, v in args.items()
                                              if k in ("dst", "table", "family", "oif")})
        current = _current_addresses(ipr, index)
        for address in set(config.addresses) & current:
            _ignore_gone("del", ipr.addr, index=index, address=str(address.address),
                         prefixlen=address.prefixlen)
        ipr.link("set", index=index, state="down")
        return True


def interface_holding(namespace: str, address: schema.IPAddress) -> str | None:
    """Name of the interface in ``namespace`` that has ``address``, if any."""
    if not netns.exists(namespace):
        return None
    with netns.entered(namespace), netlink.IPRoute() as ipr:
        names = {link["index"]: link.get("IFLA_IFNAME") for link in ipr.get_links()}
        for msg in ipr.get_addr(family=_family(address.version)):
            if ipaddress.ip_address(msg.get("IFA_ADDRESS")) == address:
                return names.get(msg["index"])
    return None


@dataclass(frozen=True)
class LinkState:
    """What a NIC looked like in the agent's namespace before a plug moved it."""

    mac: str
    name: str
    mtu: int
    up: bool


def state(mac: str) -> LinkState | None:
    """The NIC with ``mac`` in this thread's namespace, if it is here."""
    with netlink.IPRoute() as ipr:
        link = _find(ipr, mac)
        if link is None:
            return None
        return LinkState(mac, link.get("IFLA_IFNAME"), link.get("IFLA_MTU"),
                         bool(link["flags"] & IFF_UP))


def move_back(namespace: str, before: LinkState) -> None:
    """Undo :func:`move`: the NIC leaves ``namespace`` for this process's own
    namespace, with the name, MTU and up/down state it had there."""
    with netns.entered(namespace), netlink.IPRoute() as ipr:
        link = _find(ipr, before.mac)
        if link is None:
            raise LinkError(f"no interface with MAC {before.mac} in {namespace}")
        try:
            ipr.link("set", index=link["index"], state="down")
            ipr.link("set", index=link["index"], net_ns_pid=os.getpid(), ifname=before.name)
        except netlink.NetlinkError as exc:
            raise LinkError(f"cannot move {before.mac} out of {namespace}: {exc}") from None
    with netlink.IPRoute() as ipr:
        link = _find(ipr, before.mac)
        if link is None:
            raise LinkError(f"{before.mac} did not come back from {namespace}")
        ipr.link("set", index=link["index"], mtu=before.mtu,
                 state="up" if before.up else "down")
    LOG.info("moved %s back out of %s as %s", before.mac, namespace, before.name)


def management_macs(*local_addresses: str) -> set[str]:
    """MACs of the NICs the agent is reached by, in this thread's namespace:
    those holding one of ``local_addresses`` (its bind address, the address a
    request arrived at) and those of the main table's default routes."""
    indexes = set()
    with netlink.IPRoute() as ipr:
        for family in (2, 10):
            for route in ipr.get_routes(family=family, table=254):
                if route["dst_len"] == 0 and route.get("RTA_OIF"):
                    indexes.add(route.get("RTA_OIF"))
        wanted = set()
        for text in local_addresses:
            try:
                address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
            except ValueError:
                continue
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if not address.is_unspecified and not address.is_loopback:
                wanted.add(address)
        for msg in ipr.get_addr():
            if ipaddress.ip_address(msg.get("IFA_ADDRESS")) in wanted:
                indexes.add(msg["index"])
        return {(link.get("IFLA_ADDRESS") or "").lower() for link in ipr.get_links()
                if link["index"] in indexes}
