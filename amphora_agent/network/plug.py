"""Plugging VIP and member ports into the HAProxy namespace, and bringing them back at boot.

:class:`Networking` is what the plug blueprint and ``amphora-interface`` call.
A plug validates first (the blueprint parses the body; the management NIC is
refused), then moves the NIC from the agent's own namespace into the HAProxy
namespace, converges it (see :mod:`.links`) and writes the interface file
last. It is all or nothing: on a failure everything it did is undone. One
lock per agent (a thread
lock plus ``flock`` on the network directory, shared with
``amphora-interface``) serialises plugs, so concurrent retries from the
controller cannot race for the same ``ethN``.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from amphora_agent import fileutil
from amphora_agent.config import AgentConfig
from amphora_agent.errors import Conflict, InvalidRequest, NotFound
from amphora_agent.network import announce, links, namespace, rules, schema
from amphora_agent.network.interfaces import (
    MAIN_TABLE,
    VIP_INTERFACE,
    VIP_TABLE,
    Address,
    InterfaceConfig,
    InterfaceStore,
    PolicyRule,
    Route,
    index_of,
)
from amphora_contract import netns
from amphora_contract.api import NOT_READY_DETAIL

LOG = logging.getLogger(__name__)
NOT_READY = NOT_READY_DETAIL
_THREAD_LOCK = threading.Lock()


def _default(version: int) -> schema.IPNetwork:
    return ipaddress.ip_network("::/0" if version == 6 else "0.0.0.0/0")


def _unique_routes(routes: Iterable[Route]) -> tuple[Route, ...]:
    """First route per (family, table, destination) wins, like ``ip route replace``."""
    seen: dict[tuple[int, int, schema.IPNetwork], Route] = {}
    for route in routes:
        seen.setdefault(route.key, route)
    return tuple(seen.values())


def vip_interface(plug: schema.VipPlug, name: str, topology: str) -> InterfaceConfig:
    """The desired state of the VIP interface.

    SINGLE: the agent owns every VIP: addresses, a policy table (1) with the
    subnet and default routes and a ``from VIP`` rule, so replies leave by the
    VIP's gateway whatever the main table says. ACTIVE_STANDBY: keepalived
    adds the VIPs, table 1 and the rules on the MASTER; the agent sets only
    the VRRP address and the main-table routes.
    """
    single = topology == "SINGLE"
    addresses: list[Address] = []
    routes: list[Route] = []
    policy: list[PolicyRule] = []
    if plug.vrrp_ip is not None:
        addresses.append(Address(plug.vrrp_ip, plug.vip.cidr.prefixlen))
    for vip in plug.vips:
        if single:
            addresses.append(Address(vip.address, vip.cidr.prefixlen))
            routes.append(Route(vip.cidr, table=VIP_TABLE, prefsrc=vip.address, scope="link"))
            policy.append(PolicyRule(ipaddress.ip_network(vip.address)))
        if vip.gateway is not None:
            routes.append(Route(_default(vip.gateway.version), vip.gateway, onlink=True))
            if single:
                routes.append(Route(_default(vip.gateway.version), vip.gateway,
                                    table=VIP_TABLE, onlink=True))
        for host in vip.host_routes:
            routes.append(Route(host.destination, host.nexthop, onlink=True))
            if single:
                routes.append(Route(host.destination, host.nexthop, table=VIP_TABLE,
                                    onlink=True))
    for extra in plug.extra_addresses:
        addresses.append(Address(extra.address, extra.cidr.prefixlen))
        routes.extend(Route(h.destination, h.nexthop, onlink=True) for h in extra.host_routes)
    vips = tuple(v.address for v in plug.vips)
    return InterfaceConfig(
        name=name, mac=plug.mac_address, kind="vip", mtu=plug.mtu,
        addresses=tuple(dict.fromkeys(addresses)), routes=_unique_routes(routes),
        rules=tuple(dict.fromkeys(policy)), announce=vips if single else (), vips=vips,
        is_sriov=plug.is_sriov)


def network_interface(plug: schema.NetworkPlug, name: str) -> InterfaceConfig:
    """A member port: its fixed IPs and host routes; the default route stays the VIP's."""
    addresses = tuple(Address(f.address, f.cidr.prefixlen) for f in plug.fixed_ips)
    routes = [Route(h.destination, h.nexthop, table=MAIN_TABLE, onlink=True)
              for f in plug.fixed_ips for h in f.host_routes]
    return InterfaceConfig(name=name, mac=plug.mac_address, kind="network", mtu=plug.mtu,
                           addresses=addresses, routes=_unique_routes(routes),
                           is_sriov=plug.is_sriov)


@dataclass
class Networking:
    """The plug operations of one agent (namespace and files from its config)."""

    namespace: str
    store: InterfaceStore
    topology: str = "SINGLE"
    bind_host: str = "::"

    @classmethod
    def from_config(cls, config: AgentConfig) -> Networking:
        return cls(config.namespace, InterfaceStore(config.agent_server_network_dir),
                   config.loadbalancer_topology, config.bind_host)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        directory = fileutil.ensure_dir(self.store.directory)
        with _THREAD_LOCK:
            fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _in_namespace(self) -> dict[str, str]:
        return links.macs(self.namespace) if netns.exists(self.namespace) else {}

    def _apply(self, config: InterfaceConfig, previous: InterfaceConfig | None = None) -> None:
        links.configure(self.namespace, config, previous)
        if config.firewall is not None:
            rules.apply(self.namespace, config.name, config.firewall)
        if config.announce:
            announce.announce(self.namespace, config.name, config.mac, config.announce)

    # -- API operations ---------------------------------------------------------

    def plug_vip(self, plug: schema.VipPlug, reached_at: str | None = None) -> str:
        """``reached_at``: the local address the request arrived at (its NIC
        is the management NIC, whatever the routes say)."""
        with self.locked():
            self._refuse_management(plug.mac_address, reached_at)
            config = vip_interface(plug, VIP_INTERFACE, self.topology)
            done = f"VIPs plugged on interface {config.name}: " + ", ".join(
                map(str, config.vips))
            present = self._in_namespace()
            if plug.mac_address in present:
                if present[plug.mac_address] == VIP_INTERFACE and self._converge(config):
                    return done  # a plug cut short (agent restart) is now complete
                raise Conflict(f"interface {present[plug.mac_address]} already has MAC "
                               f"{plug.mac_address}", message="Interface already exists")
            if plug.mac_address not in links.macs():
                raise NotFound(NOT_READY, message="Invalid VIP")
            if VIP_INTERFACE in present.values():
                raise Conflict(f"{VIP_INTERFACE} is already plugged with another MAC",
                               message="Interface already exists")
            self._plug_new(config)
        return done

    def plug_network(self, plug: schema.NetworkPlug, reached_at: str | None = None) -> str:
        with self.locked():
            self._refuse_management(plug.mac_address, reached_at)
            present = self._in_namespace()
            if plug.mac_address in present:
                name = present[plug.mac_address]
                previous = self.store.read(name) if self.store.path(name).exists() else None
                config = self._network_config(plug, name, previous)
                if previous is not None:
                    config = config.with_firewall(previous.firewall)
                self._update(config, previous)
                return f"Updated existing interface {name}"
            if plug.mac_address not in links.macs():
                raise NotFound(NOT_READY, message="Invalid network IP")
            name = self._free_name(plug, set(self._in_namespace().values()))
            self._plug_new(self._network_config(plug, name))
            return f"Plugged on interface {name}"

    def _refuse_management(self, mac: str, reached_at: str | None) -> None:
        """The NIC the controller reaches the agent by never leaves its namespace."""
        local = [self.bind_host] + ([reached_at] if reached_at else [])
        if mac in links.management_macs(*local):
            raise InvalidRequest(f"{mac} is the management interface of this amphora; "
                                 "it cannot be plugged", message="Invalid request")

    def _plug_new(self, config: InterfaceConfig) -> None:
        """Move a NIC in and configure it, all or nothing: on any failure the
        NIC goes back where it was, as it was, and the files are restored.

        The interface file is written last, so a plug cut short by an agent
        restart leaves a NIC in the namespace without its file, which
        :meth:`_converge` completes on the controller's retry.
        """
        before = links.state(config.mac)
        if before is None:
            raise NotFound(NOT_READY, message="Invalid VIP" if config.kind == "vip"
                           else "Invalid network IP")
        saved = self.store.saved(config.name)
        created = namespace.ensure(self.namespace)
        moved = False
        try:
            moved = links.move(config.mac, self.namespace, config.name)
            if not moved:
                raise NotFound(NOT_READY, message="Invalid network IP")
            self._apply(config)
            self.store.write(config)
        except BaseException:
            LOG.warning("plugging %s as %s failed; rolling back", config.mac, config.name)
            self._roll_back(config, before if moved else None, saved, created)
            raise

    def _roll_back(self, config: InterfaceConfig, moved: links.LinkState | None,
                   saved: bytes | None, created: bool) -> None:
        steps: list[tuple[str, Callable[[], object]]] = []
        if moved is not None:
            if config.firewall is not None:
                steps.append(("firewall", lambda: rules.remove(self.namespace, config.name)))
            steps.append(("addresses, routes and rules",
                          lambda: links.deconfigure(self.namespace, config)))
            steps.append(("link", lambda: links.move_back(self.namespace, moved)))
        steps.append(("interface file", lambda: self.store.restore(config.name, saved)))
        if created:
            steps.append(("namespace", lambda: namespace.remove(self.namespace)))
        for what, step in steps:
            try:
                step()
            except Exception:  # keep undoing the rest; the plug's own error is raised
                LOG.exception("rollback of %s: could not restore the %s", config.name, what)

    def _update(self, config: InterfaceConfig, previous: InterfaceConfig | None) -> None:
        """Converge a plugged NIC to a new config; on failure, back to the previous one."""
        saved = self.store.saved(config.name)
        try:
            self._apply(config, previous)
            self.store.write(config)
        except BaseException:
            LOG.warning("updating %s failed; restoring its previous config", config.name)
            try:
                if previous is not None:
                    self._apply(previous, config)
                else:
                    links.deconfigure(self.namespace, config)
                self.store.restore(config.name, saved)
            except Exception:
                LOG.exception("could not restore %s", config.name)
            raise

    def _converge(self, config: InterfaceConfig) -> bool:
        """A repeated VIP plug: complete it if it was cut short; True if that
        was needed. An identical, complete plug is re-applied (it converges)
        and stays a conflict, which Octavia's controller takes as "already
        plugged"; a different one is left alone."""
        previous = self.store.read(config.name) if self.store.path(config.name).exists() \
            else None
        if previous is not None and previous.with_firewall(None) != config:
            return False
        config = config.with_firewall(previous.firewall) if previous is not None else config
        self._update(config, previous)
        return previous is None

    def _network_config(self, plug: schema.NetworkPlug, name: str,
                        previous: InterfaceConfig | None = None) -> InterfaceConfig:
        if plug.vip_net_info is not None:
            return vip_interface(plug.vip_net_info, name, self.topology)
        if previous is not None and previous.kind == "vip":
            # The VIP port's own network re-plugged without vip_net_info: keep
            # the VIPs, add its fixed IPs.
            extra = network_interface(plug, name)
            return replace(previous, mtu=plug.mtu if plug.mtu is not None else previous.mtu,
                           addresses=tuple(dict.fromkeys(previous.addresses + extra.addresses)),
                           routes=_unique_routes(previous.routes + extra.routes))
        return network_interface(plug, name)

    def _free_name(self, plug: schema.NetworkPlug, taken: set[str]) -> str:
        known = self.store.by_mac(plug.mac_address)
        if known is not None and known.name not in taken:
            return known.name  # plugged before a reboot; keep its name
        if plug.vip_net_info is not None and VIP_INTERFACE not in taken:
            return VIP_INTERFACE
        used = {index_of(n) for n in taken | set(self.store.names()) if n.startswith("eth")
                and n[3:].isdigit()}
        number = 2
        while number in used:
            number += 1
        return f"eth{number}"

    def interface_for(self, address: schema.IPAddress) -> str:
        """Which namespace interface holds ``address`` (or will, as a keepalived VIP)."""
        name = links.interface_holding(self.namespace, address)
        if name is None:
            for config in self.store:
                held = {a.address for a in config.addresses} | set(config.vips)
                if address in held:
                    name = config.name
                    break
        if name is None:
            raise NotFound(f"no interface in {self.namespace} has {address}",
                           message="Error interface not found for IP address")
        return name

    def set_rules(self, address: schema.IPAddress, wanted: tuple[schema.Rule, ...]) -> str:
        with self.locked():
            name = self.interface_for(address)
            rules.apply(self.namespace, name, wanted)
            config = self.store.read(name)
            if config is not None:
                self.store.write(config.with_firewall(wanted))
            return name

    # -- boot -------------------------------------------------------------------

    def _selected(self, names: Iterable[str] | None) -> list[InterfaceConfig]:
        configs = list(self.store)
        if names is None:
            return configs
        wanted = set(names)
        missing = wanted - {c.name for c in configs}
        if missing:
            raise LookupError(f"no interface file for {', '.join(sorted(missing))}")
        return [c for c in configs if c.name in wanted]

    def up(self, names: Iterable[str] | None = None) -> list[str]:
        """Re-apply interface files (boot, agent restart); idempotent."""
        with self.locked():
            configs = self._selected(names)
            namespace.ensure(self.namespace)
            own = links.macs()
            for config in configs:
                if config.mac in own:
                    links.move(config.mac, self.namespace, config.name)
                self._apply(config)
            return [c.name for c in configs]

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Take interfaces down and remove what their files added (files stay)."""
        with self.locked():
            configs = self._selected(names)
            done = []
            if not netns.exists(self.namespace):
                return done
            for config in configs:
                if config.firewall is not None:
                    rules.remove(self.namespace, config.name)
                if links.deconfigure(self.namespace, config):
                    done.append(config.name)
            return done

