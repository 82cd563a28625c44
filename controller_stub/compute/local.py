"""The embedded compute and network driver: amphorae as namespaces on one host.

A stand-in for Nova and Neutron. A *fabric* namespace holds one Linux bridge
per network and routes between them (it is every subnet's gateway); each
amphora is a namespace with a management veth on ``br-mgmt`` running the real
agent (gunicorn, mTLS) bound to its management address. ``hotplug_port`` is
Nova attaching a port: a veth with the given MAC appears in the amphora
namespace, where the agent's plug API finds it by MAC and moves it into the
amphora's own HAProxy namespace. Members and clients are namespaces on a
network; members run a small HTTP server naming themselves.

The controller side runs inside the fabric namespace: :meth:`LocalFabric.client`
returns an agent client that enters it for every request, and
:meth:`LocalFabric.run_in` runs any callable in a chosen namespace.

Every name starts with the fabric's prefix (``ampx`` + 4 hex digits), so a
leftover check is one ``ip netns list``; addresses come from 198.18.0.0/15
(management), 203.0.113.0/24 (VIP), 198.51.100.0/24 (members),
192.0.2.0/24 (clients) and 2001:db8::/32, inside these namespaces only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from amphora_contract import netns
from controller_stub.agent_process import AgentProcess
from controller_stub.client import AgentClient
from controller_stub.compute import nsutil
from controller_stub.pki import CertificateAuthority
from controller_stub.provision import AgentSettings, write_amphora_files

LOG = logging.getLogger(__name__)

PREFIX = "ampx"
AGENT_PORT = 9443
KEEPALIVED = "/usr/sbin/keepalived"
# The agent of a namespace amphora runs in that namespace, where the kernel
# refuses the process-event connector keepalived's vrrp_track_process needs
# (it exists only in the host's network namespace). The fabric's keepalived
# command starts it from the network namespace of the process that built the
# fabric (an idle thread of it: the thread that calls the agent may be inside
# the fabric namespace at that moment); keepalived then enters the HAProxy
# namespace itself (-s), as in a VM.
# A config test (-t) tracks nothing and runs where it is: the agent runs it as
# PID 1 of a new PID namespace, where /proc/<pid> names another process.
_KEEPALIVED_WRAPPER = """#!/bin/sh
case " $* " in
    *" -t "*) exec {keepalived} "$@" ;;
esac
exec nsenter --net=/proc/{pid}/task/{tid}/ns/net -- {keepalived} "$@"
"""

# name -> (IPv4 subnet, IPv6 subnet or None)
DEFAULT_NETWORKS: dict[str, tuple[str, str | None]] = {
    "mgmt": ("198.18.0.0/16", None),
    "vip": ("203.0.113.0/24", "2001:db8:203::/64"),
    "member": ("198.51.100.0/24", "2001:db8:198::/64"),
    "client": ("192.0.2.0/24", "2001:db8:192::/64"),
}
_CREATED_PREFIXES: list[str] = []
_ALLOWED = [ipaddress.ip_network(n) for n in (
    "198.18.0.0/15", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]


def created_prefixes() -> list[str]:
    """Prefixes of every fabric this process created (for leftover checks)."""
    return list(_CREATED_PREFIXES)


def _check_range(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    if not any(subnet.version == a.version and subnet.subnet_of(a)  # type: ignore[arg-type]
               for a in _ALLOWED):
        raise ValueError(f"{subnet} is outside the documentation/benchmark ranges")


@dataclass
class Network:
    """A bridge in the fabric namespace; the fabric holds each subnet's first address."""

    name: str
    bridge: str
    ipv4: ipaddress.IPv4Network
    ipv6: ipaddress.IPv6Network | None = None
    _next: int = 10

    @property
    def gateway4(self) -> ipaddress.IPv4Address:
        return self.ipv4.network_address + 1

    @property
    def gateway6(self) -> ipaddress.IPv6Address | None:
        return None if self.ipv6 is None else self.ipv6.network_address + 1

    def allocate(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv6Address | None]:
        """Next free host address (IPv4, IPv6) on this network, like Neutron IPAM."""
        number = self._next
        self._next += 1
        if number >= self.ipv4.num_addresses - 1:
            raise RuntimeError(f"network {self.name} is full")
        v6 = None if self.ipv6 is None else self.ipv6.network_address + number
        return self.ipv4.network_address + number, v6


@dataclass
class Port:
    """A NIC attached to an amphora (Nova interface attach)."""

    mac: str
    network: Network
    ifname: str  # its name in the amphora namespace before the agent moves it
    fabric_ifname: str
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address | None


@dataclass
class Amphora:
    id: str
    namespace: str
    haproxy_namespace: str
    mgmt_ip: ipaddress.IPv4Address
    root: Path
    config_file: Path
    process: AgentProcess
    topology: str = "SINGLE"
    ports: list[Port] = field(default_factory=list)
    mgmt_ifname: str = ""


@dataclass
class Endpoint:
    """A member or client namespace on one network."""

    name: str
    namespace: str
    network: Network
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address | None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None


class FabricAgentClient(AgentClient):
    """An agent client whose every request runs inside the fabric namespace."""

    def __init__(self, namespace: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.namespace = namespace

    def request(self, method: str, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        with netns.entered(self.namespace):
            return super().request(method, path, **kwargs)


class LocalFabric:
    """One embedded deployment: fabric namespace, networks, amphorae, members, clients."""

    def __init__(self, workdir: str | os.PathLike[str], *,
                 ca: CertificateAuthority | None = None, prefix: str | None = None,
                 networks: dict[str, tuple[str, str | None]] | None = None) -> None:
        self.prefix = prefix or f"{PREFIX}{secrets.token_hex(2)}"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.namespace = f"{self.prefix}-fab"
        _CREATED_PREFIXES.append(self.prefix)
        self.ca = ca or CertificateAuthority.create("Amphora fabric CA")
        self.ca_file = self.workdir / "ca.pem"
        self.ca_file.write_bytes(self.ca.cert_pem)
        self.client_cert = self.ca.issue_client("controller").write(self.workdir /
                                                                    "controller.pem")
        self._keepalived_wrapper()
        self.networks: dict[str, Network] = {}
        self.amphorae: list[Amphora] = []
        self.endpoints: list[Endpoint] = []
        self._counter = 0
        self.owned = True
        try:
            nsutil.create(self.namespace)
            for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
                nsutil.sysctl(self.namespace, key, "1")
            self._anti_spoof()
            for name, (v4, v6) in (networks or DEFAULT_NETWORKS).items():
                self.add_network(name, v4, v6)
        except BaseException:
            self.teardown()
            raise

    # -- sharing one fabric between processes --------------------------------------

    def save(self) -> Path:
        """Write ``fabric.json`` (and the CA key, 0600) so other processes can attach."""
        self.ca.write(self.workdir / "ca")
        description = {"prefix": self.prefix, "networks": {
            n.name: [str(n.ipv4), str(n.ipv6) if n.ipv6 else None]
            for n in self.networks.values()}}
        path = self.workdir / "fabric.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(description, handle)
        return path

    @classmethod
    def attach(cls, workdir: str | os.PathLike[str]) -> LocalFabric:
        """A view of a fabric another process created and saved; creates nothing.

        Its teardown removes only what this view created. Address allocation
        through :meth:`Network.allocate` is per process: callers sharing a
        fabric allocate from disjoint ranges (the controller's local compute
        driver allocates under a file lock from the upper half).
        """
        base = Path(workdir)
        description = json.loads((base / "fabric.json").read_text(encoding="utf-8"))
        self = cls.__new__(cls)
        self.prefix = description["prefix"]
        self.workdir = base
        self.namespace = f"{self.prefix}-fab"
        if not netns.exists(self.namespace):
            raise RuntimeError(f"fabric namespace {self.namespace} does not exist")
        self.ca = CertificateAuthority.load(base / "ca" / "ca.pem", base / "ca" / "ca.key")
        self.ca_file = base / "ca.pem"
        self.client_cert = base / "controller.pem"
        self.networks = {}
        for name, (v4, v6) in description["networks"].items():
            ipv4 = ipaddress.IPv4Network(v4)
            ipv6 = ipaddress.IPv6Network(v6) if v6 else None
            self.networks[name] = Network(name, f"br-{name}"[:15], ipv4, ipv6)
        self.amphorae, self.endpoints = [], []
        self._counter = 0
        self.owned = False
        self._keepalived_wrapper()
        return self

    def _keepalived_wrapper(self) -> None:
        """This process's ``keepalived_cmd`` for its amphorae (see _KEEPALIVED_WRAPPER)."""
        self._host_ns_done = threading.Event()
        self._host_ns_thread = threading.Thread(target=self._host_ns_done.wait, daemon=True,
                                                name=f"{self.prefix}-host-netns")
        self._host_ns_thread.start()
        self.keepalived_cmd = self.workdir / f"keepalived-{os.getpid()}"
        self.keepalived_cmd.write_text(_KEEPALIVED_WRAPPER.format(
            keepalived=KEEPALIVED, pid=os.getpid(), tid=self._host_ns_thread.native_id))
        self.keepalived_cmd.chmod(0o755)

    # -- plumbing ------------------------------------------------------------------

    def _name(self, kind: str) -> str:
        self._counter += 1
        return f"{self.prefix}{kind}{self._counter}"

    def _anti_spoof(self) -> None:
        """Drop forwarded packets whose source is not routed back out their input bridge.

        Like a real router with reverse-path filtering: a reply from a VIP
        that leaves the amphora by the wrong interface never reaches the
        client, so policy routing is tested for real.
        """
        script = ("table inet fabric {\n  chain forward {\n"
                  "    type filter hook forward priority filter; policy accept;\n"
                  "    fib saddr . iif oif missing drop\n  }\n}\n")
        with netns.entered(self.namespace):
            subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True,
                           capture_output=True)

    def _veth(self, network: Network, peer_namespace: str, peer_name: str,
              mac: str | None = None, local_name: str | None = None) -> str:
        """A veth on ``network``'s bridge with its peer in ``peer_namespace``."""
        local = local_name or self._name("v")
        peer: dict[str, Any] = {"ifname": peer_name, "net_ns_fd": netns.path(peer_namespace)}
        if mac:
            peer["address"] = mac
        with netns.entered(self.namespace), IPRoute() as ipr:
            ipr.link("add", ifname=local, kind="veth", peer=peer)
            bridge = ipr.link_lookup(ifname=network.bridge)[0]
            ipr.link("set", index=ipr.link_lookup(ifname=local)[0], master=bridge,
                     state="up")
        return local

    def _configure_endpoint(self, namespace: str, ifname: str, network: Network,
                            ipv4: ipaddress.IPv4Address,
                            ipv6: ipaddress.IPv6Address | None, *,
                            default_route: bool = True) -> None:
        with netns.entered(namespace), IPRoute() as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            ipr.link("set", index=index, state="up")
            addresses = [(str(ipv4), network.ipv4.prefixlen)]
            if ipv6 is not None and network.ipv6 is not None:
                addresses.append((str(ipv6), network.ipv6.prefixlen))
            nsutil.add_addresses(ipr, index, addresses)
            if default_route:
                ipr.route("replace", dst="0.0.0.0/0", gateway=str(network.gateway4))
                if network.gateway6 is not None and ipv6 is not None:
                    ipr.route("replace", dst="::/0", gateway=str(network.gateway6),
                              family=10)

    def add_network(self, name: str, ipv4: str, ipv6: str | None = None) -> Network:
        v4 = ipaddress.IPv4Network(ipv4)
        v6 = ipaddress.IPv6Network(ipv6) if ipv6 else None
        for subnet in (v4, v6):
            if subnet is not None:
                _check_range(subnet)
        network = Network(name, f"br-{name}"[:15], v4, v6)
        with netns.entered(self.namespace), IPRoute() as ipr:
            # No multicast snooping: without an MLD querier it can starve IPv6
            # neighbour discovery of freshly plugged ports. A MAC of its own:
            # a bridge without one takes its lowest port's and changes it when
            # that port goes (an amphora dies), leaving every other endpoint's
            # ARP entry for the gateway wrong for seconds.
            ipr.link("add", ifname=network.bridge, kind="bridge", br_mcast_snooping=0,
                     address=nsutil.fixed_mac(f"{self.namespace}/{network.bridge}"))
            index = ipr.link_lookup(ifname=network.bridge)[0]
            ipr.link("set", index=index, state="up")
            addresses = [(str(network.gateway4), v4.prefixlen)]
            if v6 is not None:
                addresses.append((str(network.gateway6), v6.prefixlen))
            nsutil.add_addresses(ipr, index, addresses)
        self.networks[name] = network
        return network

    # -- controller side ---------------------------------------------------------

    def run_in(self, namespace: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)`` with its thread inside ``namespace``."""
        return nsutil.run_in(namespace, func, *args, **kwargs)

    @contextlib.contextmanager
    def controller(self) -> Any:
        """Run the body in the fabric namespace (the controller's view of the networks)."""
        with netns.entered(self.namespace):
            yield

    def client(self, amphora: Amphora, **kwargs: Any) -> FabricAgentClient:
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_interval", 0.1)
        return FabricAgentClient(self.namespace, str(amphora.mgmt_ip), amphora.id,
                                 ca_file=str(self.ca_file), client_cert=str(self.client_cert),
                                 port=AGENT_PORT, **kwargs)

    # -- amphorae ------------------------------------------------------------------

    def create_amphora(self, *, topology: str = "SINGLE", amphora_id: str | None = None,
                       timeout: float = 30.0,
                       agent_options: dict[str, str] | None = None,
                       haproxy_cmd: str | None = None) -> Amphora:
        """Boot an amphora: namespace, management NIC, config and certs, running agent."""
        amphora_id = amphora_id or str(uuid.uuid4())
        number = len(self.amphorae) + 1
        while any(a.namespace == f"{self.prefix}-a{number}" for a in self.amphorae):
            number += 1
        namespace = f"{self.prefix}-a{number}"
        mgmt = self.networks["mgmt"]
        mgmt_ip, _ = mgmt.allocate()
        # short (HAProxy socket paths live below it) and never reused
        root = self.workdir / f"{namespace}-{amphora_id[:8]}"
        options = {"namespace": f"{namespace}-hap", "service_manager": "direct",
                   "keepalived_cmd": str(self.keepalived_cmd)}
        options.update(agent_options or {})
        settings = AgentSettings(amphora_id=amphora_id, bind_host=str(mgmt_ip),
                                 bind_port=AGENT_PORT, topology=topology, amphora=options,
                                 haproxy_cmd=haproxy_cmd)
        config_file = write_amphora_files(root, settings, self.ca, self.ca.cert_pem)
        amphora = Amphora(amphora_id, namespace, options["namespace"], mgmt_ip, root,
                          config_file, AgentProcess(config_file, namespace=namespace),
                          topology)
        self.amphorae.append(amphora)
        try:
            nsutil.create(namespace)
            amphora.mgmt_ifname = self._veth(mgmt, namespace, "eth0")
            self._configure_endpoint(namespace, "eth0", mgmt, mgmt_ip, None,
                                     default_route=False)
            self.start_agent(amphora, timeout=timeout)
        except BaseException:
            self.delete_amphora(amphora)
            raise
        return amphora

    def start_agent(self, amphora: Amphora, timeout: float = 30.0) -> None:
        amphora.process.start()
        with self.client(amphora) as client:
            amphora.process.wait_ready(client, timeout)

    def restart_agent(self, amphora: Amphora) -> None:
        amphora.process.stop()
        self.start_agent(amphora)

    def hotplug_port(self, amphora: Amphora, network: Network | str,
                     mac: str | None = None) -> Port:
        """Attach a NIC with ``mac`` (random fa:16:3e:… if None) to ``amphora``."""
        if isinstance(network, str):
            network = self.networks[network]
        mac = mac or "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
        ifname = self._name("h")
        fabric_ifname = self._veth(network, amphora.namespace, ifname, mac)
        ipv4, ipv6 = network.allocate()
        port = Port(mac, network, ifname, fabric_ifname, ipv4, ipv6)
        amphora.ports.append(port)
        return port

    def unplug_port(self, amphora: Amphora, port: Port) -> None:
        """Detach a NIC wherever the agent moved it (Nova interface detach)."""
        self._delete_links([port.fabric_ifname])
        amphora.ports.remove(port)

    def _delete_links(self, names: list[str]) -> None:
        if not netns.exists(self.namespace):
            return
        with netns.entered(self.namespace), IPRoute() as ipr:
            for name in names:
                for index in ipr.link_lookup(ifname=name):
                    with contextlib.suppress(NetlinkError):
                        ipr.link("del", index=index)

    def reboot_amphora(self, amphora: Amphora) -> subprocess.CompletedProcess[str]:
        """Simulate a reboot: the NICs come back in the amphora namespace unconfigured,
        the HAProxy namespace is gone; ``amphora-interface up all`` then the agent.
        """
        amphora.process.stop()
        if netns.exists(amphora.haproxy_namespace):
            nsutil.kill_all_in(amphora.haproxy_namespace)
            names = {p.mac: p.ifname for p in amphora.ports}
            with netns.entered(amphora.haproxy_namespace), IPRoute() as ipr:
                for link in ipr.get_links():
                    mac = link.get("IFLA_ADDRESS")
                    if mac in names:
                        ipr.link("set", index=link["index"], state="down")
                        ipr.link("set", index=link["index"], ifname=names[mac],
                                 net_ns_fd=netns.path(amphora.namespace))
            nsutil.delete(amphora.haproxy_namespace)
        result = self.run_interface_tool(amphora, "up", "all")
        self.start_agent(amphora)
        return result

    def run_interface_tool(self, amphora: Amphora, action: str,
                           name: str) -> subprocess.CompletedProcess[str]:
        """``amphora-interface ACTION NAME`` inside the amphora, as at boot."""
        tool = shutil.which("amphora-interface", path=os.path.dirname(sys.executable))
        argv = [tool] if tool else [sys.executable, "-m", "amphora_agent.interface_cli"]
        return subprocess.run(
            ["nsenter", f"--net={netns.path(amphora.namespace)}", "--", *argv, action, name,
             "--config-file", str(amphora.config_file)],
            capture_output=True, text=True, timeout=60, check=False)

    def delete_amphora(self, amphora: Amphora) -> None:
        amphora.process.stop()
        nsutil.delete(amphora.haproxy_namespace)
        nsutil.delete(amphora.namespace)
        # The veths' fabric ends die with their peers, asynchronously; remove
        # any still there, tolerating the ones that vanish meanwhile.
        names = [p.fabric_ifname for p in amphora.ports] + [amphora.mgmt_ifname]
        self._delete_links([n for n in names if n])
        if amphora in self.amphorae:
            self.amphorae.remove(amphora)

    # -- members and clients --------------------------------------------------

    def _endpoint(self, kind: str, network: Network | str, name: str | None) -> Endpoint:
        if isinstance(network, str):
            network = self.networks[network]
        namespace = self._name(f"-{kind}")
        ipv4, ipv6 = network.allocate()
        endpoint = Endpoint(name or namespace, namespace, network, ipv4, ipv6)
        self.endpoints.append(endpoint)
        try:
            nsutil.create(namespace)
            self._veth(network, namespace, "eth0")
            self._configure_endpoint(namespace, "eth0", network, ipv4, ipv6)
        except BaseException:
            self.delete_endpoint(endpoint)
            raise
        return endpoint

    def create_client(self, network: Network | str = "client",
                      name: str | None = None) -> Endpoint:
        """A namespace on ``network`` to connect from (a load balancer's user)."""
        return self._endpoint("c", network, name)

    def create_member(self, network: Network | str = "member", name: str | None = None,
                      port: int = 80, timeout: float = 10.0) -> Endpoint:
        """A backend: an HTTP server answering ``{"member": name, "client": ip}``."""
        member = self._endpoint("m", network, name)
        member.port = port
        log = open(self.workdir / f"{member.namespace}.log", "ab")
        with log:
            member.process = subprocess.Popen(
                ["nsenter", f"--net={netns.path(member.namespace)}", "--", sys.executable,
                 "-m", "controller_stub.compute.member", "--name", member.name,
                 "--port", str(port), "--fabric", self.prefix],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.run_in(member.namespace, _listening, port):
            if member.process.poll() is not None or time.monotonic() > deadline:
                self.delete_endpoint(member)
                raise RuntimeError(f"member {member.name} did not start")
            time.sleep(0.02)
        return member

    def delete_endpoint(self, endpoint: Endpoint) -> None:
        if endpoint.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(endpoint.process.pid, 15)
            with contextlib.suppress(subprocess.TimeoutExpired):
                endpoint.process.wait(5)
        nsutil.delete(endpoint.namespace)
        if endpoint.process is not None and endpoint.process.poll() is None:
            endpoint.process.kill()
            endpoint.process.wait(5)
        if endpoint in self.endpoints:
            self.endpoints.remove(endpoint)

    delete_member = delete_endpoint
    delete_client = delete_endpoint

    # -- lifecycle --------------------------------------------------------------

    def teardown(self) -> None:
        """Remove everything this fabric created; safe to call twice or after a failure."""
        errors: list[BaseException] = []
        for amphora in list(self.amphorae):
            try:
                self.delete_amphora(amphora)
            except Exception as exc:  # keep going; report at the end
                errors.append(exc)
        for endpoint in list(self.endpoints):
            try:
                self.delete_endpoint(endpoint)
            except Exception as exc:
                errors.append(exc)
        for name in nsutil.listed(self.prefix) if self.owned else []:
            try:
                nsutil.delete(name)
            except Exception as exc:
                errors.append(exc)
        self._host_ns_done.set()
        if errors:
            raise RuntimeError(f"fabric teardown: {errors}")

    def leftovers(self) -> list[str]:
        return nsutil.listed(self.prefix)

    def __enter__(self) -> LocalFabric:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.teardown()


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET6) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("::1", port)) == 0


# -- what a controller posts to plug these ports (Octavia's bodies) ----------------


def vip_body(port: Port, *, ipv6: bool = True, vrrp_ip: str | None = None,
             **extra: Any) -> dict[str, Any]:
    """The body Octavia's controller posts to ``/1.0/plug/vip/{port.ipv4}``."""
    net = port.network
    body: dict[str, Any] = {
        "subnet_cidr": str(net.ipv4), "gateway": str(net.gateway4), "mac_address": port.mac,
        "vrrp_ip": vrrp_ip, "mtu": 1500, "host_routes": [], "additional_vips": [],
        "is_sriov": False}
    if ipv6 and port.ipv6 is not None:
        body["additional_vips"] = [{"ip_address": str(port.ipv6), "subnet_cidr": str(net.ipv6),
                                    "gateway": str(net.gateway6), "host_routes": []}]
    body.update(extra)
    return body


def network_body(port: Port, **extra: Any) -> dict[str, Any]:
    net = port.network
    fixed = [{"ip_address": str(port.ipv4), "subnet_cidr": str(net.ipv4),
              "gateway": str(net.gateway4), "host_routes": []}]
    if port.ipv6 is not None:
        fixed.append({"ip_address": str(port.ipv6), "subnet_cidr": str(net.ipv6),
                      "gateway": str(net.gateway6), "host_routes": []})
    body: dict[str, Any] = {"mac_address": port.mac, "fixed_ips": fixed, "mtu": 1500,
                            "is_sriov": False}
    body.update(extra)
    return body
