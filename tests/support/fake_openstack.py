"""A small Keystone v3 + Nova 2.x + Neutron v2 stand-in on loopback that records requests.

No Nova or Neutron runs here, so the OpenStack compute driver is tested
against responses shaped like the real APIs' (field names and envelopes from
the Keystone v3, Compute 2.x and Networking v2 API references): a token whose
service catalog points back at this server, version documents for discovery,
servers that go BUILD → ACTIVE (or ERROR, or stay BUILD), ports with fixed IPs
from seeded subnets, interface attachments and server groups. Every request is
recorded with its JSON body for the tests to assert on.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROJECT_ID = "6b9a5e8c2a414c5c9b8d7a6f5e4d3c2b"
USER_ID = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
MGMT_NETWORK = "2c7f0d8e-9b3a-4f5e-8d1c-6a2b3c4d5e6f"
VIP_NETWORK = "8e1d4c3b-2a19-4f08-9e7d-6c5b4a392817"
_SUBNETS = {
    "3f9c8b7a-6d5e-4c3b-a291-807f6e5d4c3b": (MGMT_NETWORK, "198.51.100.0/24", "198.51.100.1"),
    "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d": (VIP_NETWORK, "203.0.113.0/24", "203.0.113.1"),
    "7e6d5c4b-3a29-4180-9f8e-7d6c5b4a3928": (VIP_NETWORK, "2001:db8:113::/64", "2001:db8:113::1"),
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeOpenStack:
    """``server_outcome``: ACTIVE, ERROR or BUILD (never leaves BUILD: a timeout)."""

    server_outcome: str = "ACTIVE"
    build_polls: int = 1
    stall_server_create: bool = False  # POST /servers answers only after close(): a hung API
    requests: list[Recorded] = field(default_factory=list)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    ports: dict[str, dict[str, Any]] = field(default_factory=dict)
    server_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    interfaces: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._polls: dict[str, int] = {}
        self._closing = threading.Event()
        self._next_host = {sid: 10 for sid in _SUBNETS}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                body = json.loads(raw) if raw else None
                if fake.stall_server_create and self.command == "POST" \
                        and url.path.rstrip("/") == "/compute/v2.1/servers":
                    fake._closing.wait(30)
                with fake._lock:
                    fake.requests.append(Recorded(self.command, url.path.rstrip("/"),
                                                  urllib.parse.parse_qs(url.query),
                                                  dict(self.headers.items()), body))
                    status, payload, headers = fake._route(self.command, url.path.rstrip("/"),
                                                           urllib.parse.parse_qs(url.query),
                                                           body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def clouds_yaml(self, path: Path) -> Path:
        path.write_text(json.dumps({"clouds": {"fake": {
            "auth_type": "v3password", "region_name": "RegionOne",
            "auth": {"auth_url": f"{self.base}/identity/v3", "username": "amphora-controller",
                     "password": "not-a-real-password", "project_name": "service",
                     "user_domain_name": "Default", "project_domain_name": "Default"}}}}))
        return path

    def sent(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # -- responses -------------------------------------------------------------------

    def _token(self) -> dict[str, Any]:
        def service(kind: str, name: str, url: str) -> dict[str, Any]:
            return {"id": uuid.uuid4().hex, "type": kind, "name": name, "endpoints": [
                {"id": uuid.uuid4().hex, "interface": iface, "region": "RegionOne",
                 "region_id": "RegionOne", "url": url} for iface in ("public", "internal")]}
        domain = {"id": "default", "name": "Default"}
        return {"token": {
            "methods": ["password"], "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"],
            "expires_at": "2099-12-31T23:59:59.000000Z",
            "issued_at": "2026-12-01T00:00:00.000000Z", "is_domain": False,
            "user": {"id": USER_ID, "name": "amphora-controller", "domain": domain,
                     "password_expires_at": None},
            "project": {"id": PROJECT_ID, "name": "service", "domain": domain},
            "roles": [{"id": uuid.uuid4().hex, "name": "member"},
                      {"id": uuid.uuid4().hex, "name": "reader"}],
            "catalog": [service("identity", "keystone", f"{self.base}/identity/v3"),
                        service("compute", "nova", f"{self.base}/compute/v2.1"),
                        service("network", "neutron", f"{self.base}/network")]}}

    def _nova_version(self) -> dict[str, Any]:
        return {"id": "v2.1", "status": "CURRENT", "version": "2.96", "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": f"{self.base}/compute/v2.1/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.compute+json;version=2.1"}]}

    def _server_view(self, server: dict[str, Any]) -> dict[str, Any]:
        view = copy.deepcopy(server)
        if view["status"] == "ACTIVE":
            addresses: dict[str, list[dict[str, Any]]] = {}
            for port_id in [server["_mgmt_port"], *self.interfaces.get(server["id"], [])]:
                port = self.ports.get(port_id)
                for fixed in (port or {}).get("fixed_ips", []):
                    version = ipaddress.ip_address(fixed["ip_address"]).version
                    addresses.setdefault(port["network_id"], []).append({
                        "addr": fixed["ip_address"], "version": version,
                        "OS-EXT-IPS:type": "fixed",
                        "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
            view["addresses"] = addresses
        view.pop("_mgmt_port", None)
        return view

    def _new_port(self, body: dict[str, Any]) -> dict[str, Any]:
        network = body["network_id"]
        fixed_ips = []
        for subnet_id, (net, cidr, _gw) in _SUBNETS.items():
            if net == network:
                host = self._next_host[subnet_id]
                self._next_host[subnet_id] += 1
                address = ipaddress.ip_network(cidr).network_address + host
                fixed_ips.append({"subnet_id": subnet_id, "ip_address": str(address)})
        port_id = str(uuid.uuid4())
        mac = "fa:16:3e:%02x:%02x:%02x" % tuple(uuid.UUID(port_id).bytes[:3])  # noqa: UP031
        port = {"id": port_id, "name": body.get("name", ""), "network_id": network,
                "tenant_id": PROJECT_ID, "project_id": PROJECT_ID, "mac_address": mac,
                "admin_state_up": True, "status": "DOWN", "device_id": "",
                "device_owner": "", "fixed_ips": fixed_ips,
                "allowed_address_pairs": body.get("allowed_address_pairs", []),
                "security_groups": body.get("security_groups", []),
                "binding:vnic_type": "normal", "port_security_enabled": True,
                "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z",
                "revision_number": 1, "tags": [], "description": ""}
        self.ports[port_id] = port
        return port

    def _route(self, method: str, path: str, query: dict[str, list[str]],
               body: Any) -> tuple[int, Any, dict[str, str]]:
        not_found = (404, {"itemNotFound": {"code": 404, "message": "Not found"}}, {})
        if path.startswith("/identity"):
            if method == "POST" and path.endswith("/auth/tokens"):
                return 201, self._token(), {"X-Subject-Token": "gAAAAAB-fake-token"}
            return 200, {"version": {
                "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": f"{self.base}/identity/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}}, {}
        if path in ("/compute", ""):
            return 200, {"versions": [self._nova_version()]}, {}
        if path == "/compute/v2.1":
            return 200, {"version": self._nova_version()}, {}
        if path.startswith("/compute/v2.1/"):
            return self._nova(method, path.removeprefix("/compute/v2.1"), query, body) \
                or not_found
        if path == "/network":
            return 200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
                {"rel": "self", "href": f"{self.base}/network/v2.0/"}]}]}, {}
        if path.startswith("/network/v2.0"):
            return self._neutron(method, path.removeprefix("/network/v2.0"), query, body) \
                or (404, {"NeutronError": {"type": "NotFound", "message": "Not found",
                                           "detail": ""}}, {})
        return not_found

    def _nova(self, method: str, path: str, query: dict[str, list[str]],
              body: Any) -> tuple[int, Any, dict[str, str]] | None:
        parts = path.strip("/").split("/")
        if parts == ["servers"] and method == "POST":
            spec = body["server"]
            server_id = str(uuid.uuid4())
            self.servers[server_id] = {
                "id": server_id, "name": spec["name"], "status": "BUILD",
                "tenant_id": PROJECT_ID, "user_id": USER_ID, "metadata": spec.get("metadata", {}),
                "image": {"id": spec.get("imageRef")}, "flavor": {"id": spec.get("flavorRef")},
                "config_drive": "True" if spec.get("config_drive") else "",
                "OS-EXT-AZ:availability_zone": spec.get("availability_zone", "nova"),
                "OS-EXT-STS:task_state": "scheduling", "OS-EXT-STS:vm_state": "building",
                "addresses": {}, "created": "2026-12-01T00:00:00Z",
                "updated": "2026-12-01T00:00:00Z", "hostId": "", "progress": 0,
                "_mgmt_port": spec["networks"][0]["port"],
                "links": [{"rel": "self", "href": f"{self.base}/compute/v2.1/servers/{server_id}"}]}
            return 202, {"server": {"id": server_id, "adminPass": "not-used",
                                    "OS-DCF:diskConfig": "MANUAL", "security_groups": [
                                        {"name": "default"}],
                                    "links": self.servers[server_id]["links"]}}, {}
        if parts == ["servers", "detail"] and method == "GET":
            name = query.get("name", [None])[0]
            return 200, {"servers": [self._server_view(s) for s in self.servers.values()
                                     if name is None or s["name"] == name]}, {}
        if len(parts) == 2 and parts[0] == "servers":
            server = self.servers.get(parts[1])
            if server is None:
                return None
            if method == "DELETE":
                del self.servers[parts[1]]
                return 204, None, {}
            polls = self._polls[parts[1]] = self._polls.get(parts[1], 0) + 1
            if server["status"] == "BUILD" and polls > self.build_polls:
                if self.server_outcome == "ACTIVE":
                    server.update({"status": "ACTIVE", "OS-EXT-STS:vm_state": "active",
                                   "OS-EXT-STS:task_state": None, "progress": 100})
                elif self.server_outcome == "ERROR":
                    server.update({"status": "ERROR", "OS-EXT-STS:vm_state": "error",
                                   "OS-EXT-STS:task_state": None, "fault": {
                                       "code": 500, "created": "2026-12-01T00:00:05Z",
                                       "message": "No valid host was found. There are not "
                                                  "enough hosts available."}})
            return 200, {"server": self._server_view(server)}, {}
        if len(parts) == 3 and parts[0] == "servers" and parts[2] == "os-interface":
            if parts[1] not in self.servers:
                return None
            port = self.ports[body["interfaceAttachment"]["port_id"]]
            port.update(device_id=parts[1], device_owner="compute:nova", status="ACTIVE")
            self.interfaces.setdefault(parts[1], []).append(port["id"])
            return 200, {"interfaceAttachment": {
                "net_id": port["network_id"], "port_id": port["id"],
                "mac_addr": port["mac_address"], "port_state": "ACTIVE",
                "fixed_ips": port["fixed_ips"]}}, {}
        if parts == ["os-server-groups"]:
            if method == "POST":
                group_id = str(uuid.uuid4())
                group = {"id": group_id, "name": body["server_group"]["name"],
                         "policies": body["server_group"].get("policies", []),
                         "members": [], "metadata": {}, "project_id": PROJECT_ID,
                         "user_id": USER_ID}
                self.server_groups[group_id] = group
                return 200, {"server_group": group}, {}
            return 200, {"server_groups": list(self.server_groups.values())}, {}
        if len(parts) == 2 and parts[0] == "os-server-groups":
            if self.server_groups.pop(parts[1], None) is None:
                return None
            return 204, None, {}
        return None

    def _neutron(self, method: str, path: str, query: dict[str, list[str]],
                 body: Any) -> tuple[int, Any, dict[str, str]] | None:
        parts = path.strip("/").split("/")
        if parts == ["ports"]:
            if method == "POST":
                return 201, {"port": self._new_port(body["port"])}, {}
            name = query.get("name", [None])[0]
            return 200, {"ports": [p for p in self.ports.values()
                                   if name is None or p["name"] == name]}, {}
        if len(parts) == 2 and parts[0] == "ports":
            if parts[1] not in self.ports:
                return None
            if method == "DELETE":
                del self.ports[parts[1]]
                return 204, None, {}
            return 200, {"port": self.ports[parts[1]]}, {}
        if len(parts) == 2 and parts[0] == "subnets" and parts[1] in _SUBNETS:
            network, cidr, gateway = _SUBNETS[parts[1]]
            net = ipaddress.ip_network(cidr)
            return 200, {"subnet": {
                "id": parts[1], "name": f"subnet-{net.version}", "network_id": network,
                "ip_version": net.version, "cidr": cidr, "gateway_ip": gateway,
                "enable_dhcp": True, "allocation_pools": [
                    {"start": str(net.network_address + 2), "end": str(net.network_address + 200)}],
                "dns_nameservers": [], "host_routes": [], "tenant_id": PROJECT_ID,
                "project_id": PROJECT_ID, "ipv6_address_mode": None, "ipv6_ra_mode": None,
                "subnetpool_id": None, "tags": [], "revision_number": 0}}, {}
        return None
