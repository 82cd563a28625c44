"""The OpenStack compute driver: amphorae as Nova servers, ports through Neutron.

Each amphora is a server named ``amphora-<id>`` booted from the LB's Glance
image (chosen by tag when the LB was created, :mod:`controller_stub.images`)
with a config drive: the agent config, its server certificate and the CA that
signs the controller's client certificate travel as Nova personality files,
which the image's ``amphora-provision`` copies below ``/etc/octavia``
(elements/amphora-agent/static/usr/local/sbin/amphora-provision). Personality
needs compute API microversion 2.56 or lower, so the driver pins it.

The management NIC is a Neutron port created first and passed to Nova; VIP
NICs are ports attached afterwards. For ACTIVE_STANDBY the VIP itself is a
port of its own (``amphora-vip-<lb id>``, never bound) whose address is
allowed on both amphorae's VIP ports (allowed address pairs), so keepalived
can move it; the pair is kept apart by a server group (anti-affinity by
default) or by the per-role zones of the LB's availability zone. Every wait is
bounded; a server that goes to ERROR or does not become ACTIVE in time is
deleted with its ports and the step fails. How an operator points it at a
cloud: docs/controller.md.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller_stub.client import AgentClient, Timeouts
from controller_stub.controller.compute import CERT_VALIDITY, PortInfo, cert_expiration
from controller_stub.pki import CertificateAuthority, Issued
from controller_stub.provision import AgentSettings

AGENT_PORT = 9443
COMPUTE_MICROVERSION = "2.56"  # the last one that accepts personality files
CONFIG_DIR = "/etc/octavia"


class ComputeError(RuntimeError):
    """A server or port could not be created, or did not become ready in time."""


@dataclass(frozen=True)
class OpenStackOptions:
    """``[openstack]`` (docs/controller.md)."""

    cloud: str | None
    compute_flavor: str
    mgmt_network: str
    security_groups: tuple[str, ...]
    server_group_policy: str  # anti-affinity, soft-anti-affinity or "" (zones only)
    ca_cert: str
    ca_key: str
    client_cert: str
    key_name: str | None = None
    poll_interval: float = 2.0
    delete_timeout: float = 60.0
    api_timeout: float = 30.0

    @classmethod
    def parse(cls, options: dict[str, str]) -> OpenStackOptions:
        missing = [k for k in ("compute_flavor", "mgmt_network", "ca_cert", "ca_key",
                               "client_cert") if not options.get(k)]
        if missing:
            raise ValueError(f"[openstack] missing {', '.join(missing)}")
        policy = options.get("server_group_policy", "anti-affinity")
        if policy not in ("anti-affinity", "soft-anti-affinity", ""):
            raise ValueError("[openstack] server_group_policy: anti-affinity, "
                             "soft-anti-affinity or empty")
        return cls(cloud=options.get("cloud") or None,
                   compute_flavor=options["compute_flavor"],
                   mgmt_network=options["mgmt_network"],
                   security_groups=tuple(s.strip() for s in
                                         options.get("security_groups", "").split(",")
                                         if s.strip()),
                   server_group_policy=policy, ca_cert=options["ca_cert"],
                   ca_key=options["ca_key"], client_cert=options["client_cert"],
                   key_name=options.get("key_name") or None,
                   poll_interval=float(options.get("poll_interval", "2")),
                   delete_timeout=float(options.get("delete_timeout", "60")),
                   api_timeout=float(options.get("api_timeout", "30")))


_SERVER_NAME = re.compile(r"amphora-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def connect(cloud: str | None, api_timeout: float) -> Any:
    """An openstacksdk connection from clouds.yaml/``OS_*``, with personality allowed
    and every API request bounded by ``api_timeout`` seconds."""
    import openstack  # only this driver needs openstacksdk

    return openstack.connect(cloud=cloud, compute_api_version=COMPUTE_MICROVERSION,
                             api_timeout=api_timeout)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class OpenStackComputeDriver:
    """Nova servers and Neutron ports for amphorae (see the module docstring)."""

    def __init__(self, options: OpenStackOptions, conn: Any | None = None) -> None:
        self.options = options
        self.conn = conn if conn is not None else connect(options.cloud, options.api_timeout)
        self.ca = CertificateAuthority.load(options.ca_cert, options.ca_key)
        self.client_ca_pem = Path(options.ca_cert).read_bytes()
        self.cert_validity = CERT_VALIDITY

    # -- helpers -------------------------------------------------------------------

    def _port(self, network: str, name: str, **extra: Any) -> Any:
        attrs: dict[str, Any] = {"network_id": network, "name": name, **extra}
        if self.options.security_groups:
            attrs.setdefault("security_group_ids", list(self.options.security_groups))
        return self.conn.network.create_port(**attrs)

    def _find_port(self, name: str) -> Any | None:
        return next(iter(self.conn.network.ports(name=name)), None)

    def _port_info(self, port: Any, network: str) -> PortInfo:
        v4 = v6 = None
        for fixed in port.fixed_ips:
            subnet = self.conn.network.get_subnet(fixed["subnet_id"])
            if subnet.ip_version == 4 and v4 is None:
                v4 = (fixed["ip_address"], subnet)
            elif subnet.ip_version == 6 and v6 is None:
                v6 = (fixed["ip_address"], subnet)
        if v4 is None:
            raise ComputeError(f"port {port.id} on {network} has no IPv4 address")
        return PortInfo(network, port.mac_address, v4[0], v6[0] if v6 else None,
                        v4[1].cidr, v4[1].gateway_ip, v6[1].cidr if v6 else None,
                        v6[1].gateway_ip if v6 else None)

    def amphora_certificate(self, amphora_id: str) -> Issued:
        return self.ca.issue_amphora(amphora_id, days=self.cert_validity / 86400)

    def _files(self, amphora_id: str, topology: str, server: Issued) -> list[dict[str, str]]:
        certs = f"{CONFIG_DIR}/certs"
        settings = AgentSettings(amphora_id=amphora_id, bind_host="0.0.0.0",  # noqa: S104
                                 bind_port=AGENT_PORT, topology=topology,
                                 agent_server_cert=f"{certs}/server.pem",
                                 agent_server_ca=f"{certs}/client_ca.pem")
        server_pem = server.pem
        return [{"path": f"{CONFIG_DIR}/amphora-agent.conf",
                 "contents": _b64(settings.render().encode())},
                {"path": f"{certs}/server.pem", "contents": _b64(server_pem)},
                {"path": f"{certs}/client_ca.pem", "contents": _b64(self.client_ca_pem)}]

    def _server_group(self, lb_id: str) -> Any:
        name = f"amphora-lb-{lb_id}"
        found = next((g for g in self.conn.compute.server_groups() if g.name == name), None)
        if found is not None:
            return found
        return self.conn.compute.create_server_group(
            name=name, policies=[self.options.server_group_policy])

    def _wait_active(self, server_id: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            server = self.conn.compute.get_server(server_id)
            if server.status == "ACTIVE":
                return server
            if server.status == "ERROR":
                fault = (server.fault or {}).get("message", "no fault recorded")
                raise ComputeError(f"server {server_id} went to ERROR: {fault}")
            if time.monotonic() >= deadline:
                raise ComputeError(f"server {server_id} not ACTIVE after {timeout:.0f}s "
                                   f"(status {server.status})")
            time.sleep(min(self.options.poll_interval, max(0.0, deadline - time.monotonic())))

    def _wait_gone(self, server_id: str) -> None:
        deadline = time.monotonic() + self.options.delete_timeout
        while self.conn.compute.find_server(server_id, ignore_missing=True) is not None:
            if time.monotonic() >= deadline:
                raise ComputeError(f"server {server_id} still present after "
                                   f"{self.options.delete_timeout:.0f}s")
            time.sleep(self.options.poll_interval)

    # -- the driver interface ---------------------------------------------------------

    def boot(self, amphora_id: str, *, topology: str, flavor: dict[str, Any],
             zone: dict[str, Any] | None, timeout: float, image_id: str | None = None,
             lb_id: str | None = None) -> dict[str, Any]:
        if not image_id:
            raise ComputeError("the OpenStack driver needs the LB's Glance image id "
                               "([images] source = glance)")
        name = f"amphora-{amphora_id}"
        # A repeated boot (the step resumed after a crash) starts from nothing.
        self.delete(amphora_id, {})
        mgmt_network = flavor.get("amp_boot_network", self.options.mgmt_network)
        mgmt = self._port(mgmt_network, f"{name}-mgmt")
        data: dict[str, Any] = {"port_ids": [mgmt.id], "ports": {}, "topology": topology,
                                "lb_id": lb_id}
        try:
            mgmt_info = self._port_info(mgmt, mgmt_network)
            server_cert = self.amphora_certificate(amphora_id)
            attrs: dict[str, Any] = {
                "name": name, "image_id": image_id,
                "flavor_id": flavor.get("compute_flavor", self.options.compute_flavor),
                "networks": [{"port": mgmt.id}], "config_drive": True,
                "personality": self._files(amphora_id, topology, server_cert),
                "metadata": {"amphora_id": amphora_id, "lb_id": lb_id or ""}}
            if self.options.key_name:
                attrs["key_name"] = self.options.key_name
            compute_zone = (zone or {}).get("compute_zone")
            if compute_zone:
                attrs["availability_zone"] = compute_zone
            if topology == "ACTIVE_STANDBY" and lb_id and self.options.server_group_policy:
                group = self._server_group(lb_id)
                attrs["scheduler_hints"] = {"group": group.id}
                data["server_group_id"] = group.id
            server = self.conn.compute.create_server(**attrs)
            data["server_id"] = server.id
            self._wait_active(server.id, timeout)
        except ComputeError:
            self.delete(amphora_id, data)
            raise
        except Exception as exc:  # the SDK's and keystoneauth's errors, in one line
            self.delete(amphora_id, data)
            raise ComputeError(f"boot of amphora {amphora_id} failed: "
                               f"{str(exc).splitlines()[0][:300] if str(exc) else exc!r}") from exc
        except BaseException:
            self.delete(amphora_id, data)
            raise
        data.update(compute_id=server.id, namespace=server.id, mgmt_ip=mgmt_info.ipv4,
                    compute_zone=compute_zone, cert_expiration=cert_expiration(server_cert))
        return data

    def allocate_address(self, owner: str, network: str) -> tuple[str, str | None]:
        name = f"amphora-vip-{owner}"
        port = self._find_port(name) or self._port(network, name)
        info = self._port_info(port, network)
        return info.ipv4, info.ipv6

    def attach_port(self, amphora_id: str, compute_data: dict[str, Any], network: str,
                    purpose: str) -> PortInfo:
        known = compute_data.setdefault("ports", {}).get(purpose)
        if known:
            return PortInfo(**known)
        name = f"amphora-{amphora_id}-{purpose}"
        extra: dict[str, Any] = {}
        lb_id = compute_data.get("lb_id")
        if purpose == "vip" and compute_data.get("topology") == "ACTIVE_STANDBY" and lb_id:
            vip = self._find_port(f"amphora-vip-{lb_id}")
            if vip is None:
                raise ComputeError(f"no VIP port for load balancer {lb_id}")
            extra["allowed_address_pairs"] = [{"ip_address": f["ip_address"]}
                                              for f in vip.fixed_ips]
        port = self._find_port(name) or self._port(network, name, **extra)
        compute_data.setdefault("port_ids", []).append(port.id)
        self.conn.compute.create_server_interface(compute_data["server_id"], port_id=port.id)
        info = self._port_info(port, network)
        compute_data["ports"][purpose] = info.as_dict()
        return info

    def client(self, amphora_id: str, compute_data: dict[str, Any], *, retries: int,
               retry_interval: float, timeout: float) -> AgentClient:
        return AgentClient(compute_data["mgmt_ip"], amphora_id, ca_file=self.options.ca_cert,
                           client_cert=self.options.client_cert, port=AGENT_PORT,
                           retries=retries, retry_interval=retry_interval,
                           timeouts=Timeouts(connect=min(timeout, 5.0), read=timeout))

    def delete(self, amphora_id: str, compute_data: dict[str, Any]) -> None:
        name = f"amphora-{amphora_id}"
        server_ids = {compute_data["server_id"]} if compute_data.get("server_id") else set()
        server_ids |= {s.id for s in self.conn.compute.servers(name=name)
                       if s.name == name}
        for server_id in server_ids:
            self.conn.compute.delete_server(server_id, ignore_missing=True)
        for server_id in server_ids:
            self._wait_gone(server_id)
        port_ids = set(compute_data.get("port_ids", []))
        port_ids |= {p.id for p in self.conn.network.ports(name=f"{name}-mgmt")}
        port_ids |= {p.id for p in self.conn.network.ports(name=f"{name}-vip")}
        for port_id in port_ids:
            self.conn.network.delete_port(port_id, ignore_missing=True)

    @staticmethod
    def instance_key(amphora_id: str) -> str:
        return amphora_id

    def instances(self) -> dict[str, str]:
        """Servers this driver booted (named ``amphora-<amphora id>`` with that id
        in their metadata): amphora id → server id."""
        found = {}
        for server in self.conn.compute.servers():
            match = _SERVER_NAME.fullmatch(server.name or "")
            if match and (server.metadata or {}).get("amphora_id") == match.group(1):
                found[match.group(1)] = server.id
        return found

    def delete_instance(self, amphora_id: str) -> None:
        """Remove a server (and its ports) no amphora row names."""
        if not _SERVER_NAME.fullmatch(f"amphora-{amphora_id}"):
            raise ValueError(f"not an amphora id: {amphora_id[:40]!r}")
        self.delete(amphora_id, {})

    def release(self, owner: str) -> None:
        vip = self._find_port(f"amphora-vip-{owner}")
        if vip is not None:
            self.conn.network.delete_port(vip.id, ignore_missing=True)
        name = f"amphora-lb-{owner}"
        for group in self.conn.compute.server_groups():
            if group.name == name:
                self.conn.compute.delete_server_group(group.id, ignore_missing=True)
