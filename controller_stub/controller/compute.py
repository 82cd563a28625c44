"""Compute drivers: where amphorae come from.

The interface is what a flow step needs: boot an amphora (idempotent per
amphora id, so a resumed step simply repeats it), attach a port on a network
with an address, hand out the agent client, and delete everything an amphora
owns. ``local`` (the default) runs amphorae as namespaces on the fabric of
:mod:`controller_stub.compute.local`; ``openstack`` boots Nova servers
(:mod:`controller_stub.controller.openstack_compute`).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import resource
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from amphora_contract.heartbeat import derive_amphora_key
from controller_stub.agent_launch import AgentLaunch
from controller_stub.agent_process import AgentProcess
from controller_stub.client import AgentClient, Timeouts
from controller_stub.compute import nsutil
from controller_stub.compute.local import AGENT_PORT, FabricAgentClient, LocalFabric, Network
from controller_stub.pki import Issued
from controller_stub.provision import AgentSettings, write_amphora_files

CERT_VALIDITY = 730 * 86400.0  # seconds an amphora's server certificate is issued for


def cert_expiration(issued: Issued) -> str:
    """When ``issued`` expires, as compute data records it (naive UTC, ISO 8601)."""
    return issued.cert.not_valid_after_utc.replace(tzinfo=None).isoformat()


@dataclass(frozen=True)
class PortInfo:
    """A port attached to an amphora: what the agent's plug bodies need."""

    network: str
    mac: str
    ipv4: str
    ipv6: str | None
    subnet_cidr: str
    gateway: str
    subnet_cidr6: str | None
    gateway6: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ComputeDriver(Protocol):
    def boot(self, amphora_id: str, *, topology: str, flavor: dict[str, Any],
             zone: dict[str, Any] | None, timeout: float, image_id: str | None = None,
             lb_id: str | None = None) -> dict[str, Any]:
        """Boot (or re-boot from scratch) ``amphora_id``; returns its compute data."""

    def allocate_address(self, owner: str, network: str) -> tuple[str, str | None]:
        """An address on ``network`` held by ``owner`` (the same one on a repeat call)."""

    def attach_port(self, amphora_id: str, compute_data: dict[str, Any], network: str,
                    purpose: str) -> PortInfo:
        """Attach a NIC on ``network`` to the amphora (idempotent per purpose)."""

    def client(self, amphora_id: str, compute_data: dict[str, Any], *, retries: int,
               retry_interval: float, timeout: float) -> AgentClient:
        """An mTLS client for the amphora's agent."""

    def delete(self, amphora_id: str, compute_data: dict[str, Any]) -> None:
        """Remove the amphora and everything it holds; absent is fine."""

    def release(self, owner: str) -> None:
        """Release every address ``owner`` holds."""

    def amphora_certificate(self, amphora_id: str) -> Issued:
        """A new server certificate (and key) for the amphora's agent, from the
        CA the controller trusts, valid for the driver's ``cert_validity``."""


class LocalComputeDriver:
    """Amphorae as namespaces on a local fabric, shared safely by several processes.

    Addresses are allocated from the upper half of each subnet (the lower half
    is for members and clients a test or the demo creates), recorded in
    ``allocations.json`` under an exclusive file lock, keyed by owner, so a
    repeated allocation after a crash returns the same address and deleting
    an owner frees it.
    """

    def __init__(self, workdir: str | os.PathLike[str], zones: tuple[str, ...] = (),
                 agent: AgentLaunch | None = None) -> None:
        self.workdir = Path(workdir)
        self.agent = agent or AgentLaunch()
        # Zones are labels on one host (an amphora's namespace records its zone);
        # empty: any zone a profile names is accepted.
        self.zones = zones
        if (self.workdir / "fabric.json").exists():
            self.fabric = LocalFabric.attach(self.workdir)
        else:
            self.fabric = LocalFabric(self.workdir)
            self.fabric.save()
        self.owns_fabric = self.fabric.owned
        self._lock_path = self.workdir / "allocations.lock"
        # (address, port, master key, interval): where amphorae send heartbeats
        self.heartbeat: tuple[str, int, str, int] | None = None
        self._state_path = self.workdir / "allocations.json"
        self.cert_validity = CERT_VALIDITY

    def amphora_certificate(self, amphora_id: str) -> Issued:
        return self.fabric.ca.issue_amphora(amphora_id, days=self.cert_validity / 86400)

    # -- addresses -------------------------------------------------------------

    @contextlib.contextmanager
    def _allocations(self) -> Any:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state: dict[str, dict[str, str]] = {}
            if self._state_path.exists():
                state = json.loads(self._state_path.read_text(encoding="utf-8"))
            yield state
            tmp = self._state_path.with_suffix(".tmp")
            tfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(tfd, "w", encoding="utf-8") as handle:
                json.dump(state, handle)
            os.replace(tmp, self._state_path)
        finally:
            os.close(fd)

    def _number(self, owner: str, network: Network) -> int:
        with self._allocations() as state:
            used = state.setdefault(network.name, {})
            for number, holder in used.items():
                if holder == owner:
                    return int(number)
            first = max(16, network.ipv4.num_addresses // 2)
            for number in range(first, network.ipv4.num_addresses - 1):
                if str(number) not in used:
                    used[str(number)] = owner
                    return number
        raise RuntimeError(f"network {network.name} has no free address")

    def allocate_address(self, owner: str, network: str) -> tuple[str, str | None]:
        net = self.fabric.networks[network]
        number = self._number(owner, net)
        v6 = None if net.ipv6 is None else str(net.ipv6.network_address + number)
        return str(net.ipv4.network_address + number), v6

    def hold_address(self, owner: str, network: str, address: str) -> None:
        """Record ``address`` as held by ``owner`` (a SINGLE failover keeps the VIP)."""
        net = self.fabric.networks[network]
        number = int(ipaddress.ip_address(address)) - int(net.ipv4.network_address)
        with self._allocations() as state:
            state.setdefault(net.name, {})[str(number)] = owner

    def heartbeat_endpoint(self) -> tuple[str, str]:
        """(namespace, address) where a health listener is reachable from amphorae:
        the management network's gateway in the fabric namespace."""
        return self.fabric.namespace, str(self.fabric.networks["mgmt"].gateway4)

    def release(self, owner: str) -> None:
        with self._allocations() as state:
            for used in state.values():
                for number in [n for n, holder in used.items()
                               if holder == owner or holder.startswith(owner + ":")]:
                    del used[number]

    # -- amphorae ----------------------------------------------------------------

    def _names(self, amphora_id: str) -> tuple[str, str, Path]:
        short = self.instance_key(amphora_id)
        namespace = f"{self.fabric.prefix}-a{short}"
        return namespace, f"{namespace}-hap", self.workdir / f"a{short}"

    def boot(self, amphora_id: str, *, topology: str, flavor: dict[str, Any],
             zone: dict[str, Any] | None, timeout: float = 30.0, image_id: str | None = None,
             lb_id: str | None = None) -> dict[str, Any]:
        compute_zone = (zone or {}).get("compute_zone")
        if self.zones and compute_zone is not None and compute_zone not in self.zones:
            raise ValueError(f"compute zone {compute_zone!r} is not one of this fabric's "
                             f"zones ({', '.join(self.zones)})")
        namespace, haproxy_namespace, root = self._names(amphora_id)
        # A repeated boot (the step resumed after a crash) starts from nothing.
        self._remove(namespace, haproxy_namespace, root, [])
        mgmt = self.fabric.networks[flavor.get("amp_boot_network", "mgmt")]
        mgmt_ip, _ = self.allocate_address(f"{amphora_id}:mgmt", mgmt.name)
        # keepalived's vrrp_track_process needs the kernel's process connector,
        # which answers only in the initial network namespace: the fabric's
        # wrapper starts keepalived there (see controller_stub/compute/local.py).
        options = {"namespace": haproxy_namespace, "service_manager": "direct",
                   "keepalived_cmd": str(self.fabric.keepalived_cmd)}
        health: dict[str, Any] = {}
        if self.heartbeat is not None:
            address, port, master_key, interval = self.heartbeat
            health = {"controllers": [f"{address}:{port}"], "heartbeat_interval": interval,
                      "heartbeat_key": derive_amphora_key(master_key, amphora_id)}
            options["heartbeat_version"] = "4"
            if self.agent.octavia:  # version 3 only, signed with the shared key
                health["heartbeat_key"] = master_key
        if self.agent.octavia:
            options = {}  # Octavia's agent reads none of ours
        settings = AgentSettings(amphora_id=amphora_id, bind_host=mgmt_ip,
                                 bind_port=AGENT_PORT, topology=topology, amphora=options,
                                 **health)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        server = self.amphora_certificate(amphora_id)
        config_file = write_amphora_files(root, settings, self.fabric.ca,
                                          self.fabric.ca.cert_pem, server)
        mgmt_link = f"{self.fabric.prefix}m{secrets.token_hex(3)}"
        data: dict[str, Any] = {"namespace": namespace, "haproxy_namespace": haproxy_namespace,
                                "root": str(root), "mgmt_ip": mgmt_ip, "links": [mgmt_link],
                                "ports": {}, "config_file": str(config_file),
                                "compute_zone": compute_zone,
                                "cert_expiration": cert_expiration(server),
                                # agents inherit this process's limit (Octavia's does not say)
                                "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}
        try:
            nsutil.create(namespace)
            if self.agent.octavia:  # it finds its HAProxy namespace made (octavia_launch)
                nsutil.create(haproxy_namespace)
            self.fabric._veth(mgmt, namespace, "eth0", local_name=mgmt_link)
            self.fabric._configure_endpoint(namespace, "eth0", mgmt,
                                            ipaddress.IPv4Address(mgmt_ip), None,
                                            default_route=False)
            process = AgentProcess(config_file, namespace=namespace,
                                   launcher=self.agent.launcher(root, haproxy_namespace))
            process.start()
            with self.client(amphora_id, data, retries=0, retry_interval=0.05,
                             timeout=2.0) as client:
                # a refused connect costs little: poll often, the pair waits on it
                process.wait_ready(client, timeout, interval=0.01)
        except BaseException:
            self._remove(namespace, haproxy_namespace, root, data["links"])
            raise
        return data

    def attach_port(self, amphora_id: str, compute_data: dict[str, Any], network: str,
                    purpose: str) -> PortInfo:
        known = compute_data.setdefault("ports", {}).get(purpose)
        if known:
            return PortInfo(**known)
        net = self.fabric.networks[network]
        ipv4, ipv6 = self.allocate_address(f"{amphora_id}:{purpose}", network)
        mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
        link = f"{self.fabric.prefix}p{secrets.token_hex(3)}"
        self.fabric._veth(net, compute_data["namespace"], f"eth{len(compute_data['links'])}",
                          mac, local_name=link)
        compute_data["links"].append(link)
        port = PortInfo(network, mac, ipv4, ipv6, str(net.ipv4), str(net.gateway4),
                        str(net.ipv6) if net.ipv6 else None,
                        str(net.gateway6) if net.gateway6 else None)
        compute_data["ports"][purpose] = port.as_dict()
        return port

    def client(self, amphora_id: str, compute_data: dict[str, Any], *, retries: int,
               retry_interval: float, timeout: float) -> AgentClient:
        return FabricAgentClient(self.fabric.namespace, compute_data["mgmt_ip"], amphora_id,
                                 ca_file=str(self.fabric.ca_file),
                                 client_cert=str(self.fabric.client_cert), port=AGENT_PORT,
                                 retries=retries, retry_interval=retry_interval,
                                 timeouts=Timeouts(connect=min(timeout, 5.0), read=timeout))

    def delete(self, amphora_id: str, compute_data: dict[str, Any]) -> None:
        namespace, haproxy_namespace, root = self._names(amphora_id)
        self._remove(namespace, haproxy_namespace, root, compute_data.get("links", []))
        self.release(amphora_id)

    def _remove(self, namespace: str, haproxy_namespace: str, root: Path,
                links: list[str]) -> None:
        nsutil.delete(haproxy_namespace)
        nsutil.delete(namespace)
        self.fabric._delete_links(links)
        shutil.rmtree(root, ignore_errors=True)

    def namespaces(self) -> list[str]:
        return nsutil.listed(f"{self.fabric.prefix}-a")

    def instances(self) -> dict[str, str]:
        """Amphora namespaces on this fabric: short amphora id (10 hex digits, as
        in the names this driver gives) → namespace. Only this fabric's prefix
        and exactly that shape: nothing else on the host is ever listed."""
        pattern = re.compile(re.escape(self.fabric.prefix) + r"-a([0-9a-f]{10})")
        found = {}
        for name in self.namespaces():
            match = pattern.fullmatch(name.removesuffix("-hap"))
            if match:
                found[match.group(1)] = match.group(0)
        return found

    @staticmethod
    def instance_key(amphora_id: str) -> str:
        """How :meth:`instances` names an amphora: the short id in its namespace name."""
        return amphora_id.replace("-", "")[:10]

    def delete_instance(self, short: str) -> None:
        """Remove an amphora namespace no row owns (its HAProxy namespace, files
        and addresses too); ``short`` as :meth:`instances` keys it."""
        if not re.fullmatch(r"[0-9a-f]{10}", short):
            raise ValueError(f"not a short amphora id: {short[:40]!r}")
        namespace = f"{self.fabric.prefix}-a{short}"
        self._remove(namespace, f"{namespace}-hap", self.workdir / f"a{short}", [])
        with self._allocations() as state:
            for used in state.values():
                for number in [n for n, holder in used.items()
                               if self.instance_key(holder.partition(":")[0]) == short
                               and ":" in holder]:
                    del used[number]


def make_driver(name: str, options: dict[str, str]) -> ComputeDriver:
    if name == "local":
        zones = tuple(z.strip() for z in options.get("zones", "").split(",") if z.strip())
        agent = AgentLaunch.parse(options.get("agent_venv", ""),
                                  options.get("agent_kind", "amphora"))
        return LocalComputeDriver(options["workdir"], zones, agent)
    if name == "openstack":
        from controller_stub.controller import openstack_compute

        return openstack_compute.OpenStackComputeDriver(
            openstack_compute.OpenStackOptions.parse(options))
    raise ValueError(f"unknown compute driver {name!r} (available: local, openstack)")
