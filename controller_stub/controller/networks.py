"""Stable ids for the local fabric's networks and subnets, so ``vip_network_id``,
``vip_subnet_id``, ``vip_address`` and members' ``subnet_id`` take them as
Octavia takes Neutron's.

A network's id is a UUID derived from its name, a subnet's from its network
and CIDR: the same fabric gets the same ids on every start and every
controller. The management network is not offered (amphorae use it, LBs do
not). With a compute driver that has no local fabric the registry is empty
and ids are passed through to the engine as given.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any

from controller_stub.controller.errors import InvalidRequest

_NAMESPACE = uuid.UUID("6b0f6a52-3c1e-5d53-9a0e-8f2a7a6c1d40")
_HIDDEN = ("mgmt",)
_VIP_REQUIRED = "VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id."


@dataclass(frozen=True)
class Subnet:
    id: str
    network_id: str
    network_name: str
    cidr: str
    ip_version: int
    gateway_ip: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "network_id": self.network_id,
                "name": f"{self.network_name}-ipv{self.ip_version}",
                "cidr": self.cidr, "ip_version": self.ip_version,
                "gateway_ip": self.gateway_ip}


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    subnets: tuple[Subnet, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "subnets": [s.id for s in self.subnets]}


class NetworkRegistry:
    """The networks a VIP or a member may name, by id."""

    def __init__(self, networks: dict[str, tuple[str, str | None]]) -> None:
        self.networks: dict[str, Network] = {}
        self.subnets: dict[str, Subnet] = {}
        for name, cidrs in sorted(networks.items()):
            if name in _HIDDEN:
                continue
            net_id = str(uuid.uuid5(_NAMESPACE, f"network/{name}"))
            subnets = []
            for cidr in (c for c in cidrs if c):
                net = ipaddress.ip_network(cidr)
                subnets.append(Subnet(str(uuid.uuid5(_NAMESPACE, f"subnet/{name}/{net}")),
                                      net_id, name, str(net), net.version,
                                      str(net.network_address + 1)))
            self.networks[net_id] = Network(net_id, name, tuple(subnets))
            self.subnets.update((s.id, s) for s in subnets)

    @classmethod
    def of_compute(cls, compute: Any) -> NetworkRegistry:
        fabric = getattr(compute, "fabric", None)
        if fabric is None:
            return cls({})
        return cls({n.name: (str(n.ipv4), str(n.ipv6) if n.ipv6 else None)
                    for n in fabric.networks.values()})

    @property
    def local(self) -> bool:
        return bool(self.networks)

    def by_name(self, name: str | None) -> Network | None:
        return next((n for n in self.networks.values() if n.name == name), None)

    def resolve_vip(self, *, network_id: str | None, subnet_id: str | None,
                    address: str | None) -> tuple[str, str]:
        """(network name for the engine, subnet id) for a VIP, checked as Octavia
        checks Neutron's: the subnet exists, belongs to the network, holds the
        address; a network alone picks its subnet of the address's family."""
        if not self.local:
            if network_id is None and subnet_id is None:
                raise InvalidRequest(_VIP_REQUIRED)
            return network_id or "vip", subnet_id or ""
        subnet = None
        if subnet_id is not None:
            subnet = self.subnets.get(subnet_id)
            if subnet is None:
                raise InvalidRequest(f"Subnet {subnet_id} not found.")
        if network_id is not None:
            network = self.networks.get(network_id)
            if network is None:
                raise InvalidRequest(f"Network {network_id} not found.")
            if subnet is not None and subnet.network_id != network_id:
                raise InvalidRequest(f"Subnet {subnet_id} is not on network {network_id}.")
            if subnet is None:
                version = ipaddress.ip_address(address).version if address else 4
                subnet = next((s for s in network.subnets if s.ip_version == version), None)
                if subnet is None:
                    raise InvalidRequest(f"Network {network_id} has no IPv{version} subnet.")
        if subnet is None:
            raise InvalidRequest(_VIP_REQUIRED)
        if subnet.ip_version != 4:
            raise InvalidRequest(f"Subnet {subnet.id}: IPv6 VIPs are not supported.")
        if address is not None:
            ip, net = ipaddress.ip_address(address), ipaddress.ip_network(subnet.cidr)
            if ip not in net or ip in (net.network_address, net.broadcast_address,
                                       ipaddress.ip_address(subnet.gateway_ip)):
                raise InvalidRequest(f"IP address {address} is not a host address of subnet "
                                     f"{subnet.id}.")

        return subnet.network_name, subnet.id

    def check_subnet(self, subnet_id: str | None) -> None:
        if subnet_id is not None and self.local and subnet_id not in self.subnets:
            raise InvalidRequest(f"Subnet {subnet_id} not found.")

    def network_id(self, name: str | None) -> str | None:
        """The id shown for an engine network name (the name itself if unknown)."""
        network = self.by_name(name)
        return network.id if network else name
