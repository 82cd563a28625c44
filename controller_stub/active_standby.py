"""An ACTIVE_STANDBY load balancer on the local fabric: two amphorae, one VIP.

What a controller does for Octavia's ACTIVE_STANDBY topology, through the
agent API only: plug the VIP port of each amphora with its own VRRP address
(the VIP itself is left to keepalived), plug the member network, push the
same HAProxy load balancer (with HAProxy peers) to both, then a keepalived
config per amphora and ``start``. Two config shapes:

- ``ours``: rendered by :mod:`keepalived` (VRRPv3, unicast, ``nopreempt``,
  ``vrrp_track_process`` on this amphora's HAProxy, advert 0.1 s default);
- ``octavia``: shaped like Octavia's default template (VRRPv2,
  ``auth_type PASS``, advert 1 s, its check script every 5 s, fall 2), the
  baseline of ``bench/failover.py``.

:class:`Prober` sends a new HTTP connection every few milliseconds from a
client namespace and keeps every result, so an outage can be measured from
the last good response before a fault to the first good one after it.
Used by tests/integration/failover, ``bench/failover.py`` and ``make demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from amphora_contract import agent_config, netns
from amphora_contract import vrrp as paths
from controller_stub.compute.local import Amphora, Endpoint, LocalFabric, Port, network_body
from controller_stub.loadbalancer import http_document, render_for
from keepalived import DEFAULT_ADVERT_INT, HaproxyTrack, VrrpInstance, render

SHAPES = ("ours", "octavia")
KEEPALIVED_SERVICE = "amphora-keepalived"


@dataclass
class Side:
    """One amphora of the pair."""

    amphora: Amphora
    vip_port: Port
    member_port: Port
    vrrp_ip: str
    interface: str
    base_path: Path

    def pid(self, kind: str) -> int | None:
        path = self.base_path / paths.VRRP_DIR / f"{KEEPALIVED_SERVICE}.{kind}.pid"
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None


@dataclass
class Pair:
    fabric: LocalFabric
    lb_id: str
    vip: str
    shape: str
    sides: list[Side]
    document: dict[str, Any]
    configs: list[str] = field(default_factory=list)

    @property
    def haproxy_namespaces(self) -> list[str]:
        return [s.amphora.haproxy_namespace for s in self.sides]

    def holds_vip(self, index: int) -> bool:
        side = self.sides[index]
        if not netns.exists(side.amphora.haproxy_namespace):
            return False
        out = subprocess.run(["ip", "-n", side.amphora.haproxy_namespace, "-o", "addr", "show",
                              "dev", side.interface], capture_output=True, text=True,
                             check=False).stdout
        return f" {self.vip}/" in out

    def holders(self) -> list[int]:
        """Indexes of the amphorae that have the VIP on their VRRP interface."""
        return [i for i in range(len(self.sides)) if self.holds_vip(i)]

    def wait(self, condition: Callable[[], bool], timeout: float = 15.0,
             interval: float = 0.005) -> float | None:
        """Seconds until ``condition()`` held, or None at the deadline."""
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                return None
            time.sleep(interval)
        return time.monotonic() - start

    def wait_single_holder(self, timeout: float = 15.0) -> int:
        if self.wait(lambda: len(self.holders()) == 1, timeout) is None:
            raise RuntimeError(f"VIP {self.vip} held by {self.holders()}, not by one amphora")
        return self.holders()[0]

    def client(self, index: int) -> Any:
        return self.fabric.client(self.sides[index].amphora)

    # -- faults ------------------------------------------------------------------

    def _links(self, index: int, state: str) -> None:
        side = self.sides[index]
        for name in (side.vip_port.fabric_ifname, side.amphora.mgmt_ifname):
            subprocess.run(["ip", "-n", self.fabric.namespace, "link", "set", name, state],
                           check=True)

    def links_down(self, index: int) -> None:
        """The amphora's VIP and management links lose carrier (switch port down)."""
        self._links(index, "down")

    def links_up(self, index: int) -> None:
        self._links(index, "up")

    def kill_keepalived(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Signal every keepalived process of this amphora at once (its session)."""
        main = self.sides[index].pid("main")
        if main is None:
            raise RuntimeError("keepalived is not running")
        os.killpg(main, sig)

    def keepalived(self, index: int, action: str) -> None:
        with self.client(index) as client:
            client.vrrp_action(action)

    def kill_haproxy(self, index: int) -> None:
        """SIGKILL this amphora's HAProxy master (and so its workers)."""
        pid_file = self.sides[index].base_path / self.lb_id / "haproxy.pid"
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)

    def start_haproxy(self, index: int) -> None:
        with self.client(index) as client:
            client.lb_action(self.lb_id, "start")

    def stop_all(self) -> None:
        """Stop both keepalived (cleanly where the agent still answers)."""
        for index, side in enumerate(self.sides):
            with contextlib.suppress(Exception):
                self.keepalived(index, "stop")
            main = side.pid("main")
            if main is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(main, signal.SIGKILL)

    def delete(self) -> None:
        """Stop keepalived and delete both amphorae (their namespaces and processes)."""
        self.stop_all()
        for side in self.sides:
            self.fabric.delete_amphora(side.amphora)


def _keepalived_ours(pair_lb: str, side: Side, peer: Side, role: str, vip: str,
                     network: ipaddress.IPv4Network | ipaddress.IPv6Network, gateway: str,
                     advert_int: Decimal, vrid: int) -> str:
    return render(VrrpInstance(
        lb_id=pair_lb, amphora_id=side.amphora.id, role=role, interface=side.interface,
        virtual_router_id=vrid, unicast_src_ip=side.vrrp_ip, unicast_peers=(peer.vrrp_ip,),
        vip=vip, vip_network=network, vip_gateway=gateway, advert_int=advert_int,
        track_haproxy=HaproxyTrack(lb_id=pair_lb, base_path=str(side.base_path))))


def _keepalived_octavia(pair_lb: str, side: Side, peer: Side, role: str, vip: str,
                        network: ipaddress.IPv4Network | ipaddress.IPv6Network, gateway: str,
                        vrid: int) -> str:
    """What Octavia's keepalived template renders with its defaults
    (octavia/amphorae/drivers/keepalived/jinja/templates/keepalived_base.template):
    VRRPv2, auth PASS, advert 1 s, check script interval 5 fall 2 rise 2,
    MASTER priority 100, BACKUP 90, nopreempt, GARP refresh 5 s x 2."""
    priority = 100 if role == "MASTER" else 90
    prefix = 32 if ":" not in vip else 128
    default = "default" if ":" not in vip else "default6"
    return f"""vrrp_script check_script {{
  script {side.base_path}/vrrp/check_script.sh
  interval 5
  fall 2
  rise 2
}}

vrrp_instance {pair_lb.replace("-", "")} {{
  state {role}
  interface {side.interface}
  virtual_router_id {vrid}
  priority {priority}
  nopreempt
  accept
  garp_master_refresh 5
  garp_master_refresh_repeat 2
  advert_int 1
  authentication {{
    auth_type PASS
    auth_pass {pair_lb.replace("-", "")[:8]}
  }}

  unicast_src_ip {side.vrrp_ip}
  unicast_peer {{
    {peer.vrrp_ip}
  }}

  virtual_ipaddress {{
    {vip}
  }}

  virtual_routes {{
    {network} dev {side.interface} src {vip} scope link table 1
    {default} via {gateway} dev {side.interface} onlink table 1
  }}

  virtual_rules {{
    from {vip}/{prefix} table 1 priority 100
  }}

  track_script {{
    check_script
  }}
}}
"""


def _vip_body(port: Port, family: int, vip_network: Any, gateway: Any) -> dict[str, Any]:
    vrrp_ip = port.ipv4 if family == 4 else port.ipv6
    return {"subnet_cidr": str(vip_network), "gateway": str(gateway),
            "mac_address": port.mac, "vrrp_ip": str(vrrp_ip), "mtu": 1500,
            "host_routes": [], "additional_vips": [], "is_sriov": False}


def build_pair(fabric: LocalFabric, members: list[Endpoint], *, family: int = 4,
               shape: str = "ours", advert_int: Decimal = DEFAULT_ADVERT_INT,
               virtual_router_id: int = 1) -> Pair:
    """Boot two amphorae and make them an ACTIVE_STANDBY load balancer for ``members``.

    The first amphora is configured MASTER and the pair is returned once the
    VIP is on exactly one of them. Amphorae already on the fabric are untouched.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}")
    vip_net = fabric.networks["vip"]
    network = vip_net.ipv4 if family == 4 else vip_net.ipv6
    gateway = vip_net.gateway4 if family == 4 else vip_net.gateway6
    if network is None or gateway is None:
        raise ValueError(f"the VIP network has no IPv{family} subnet")
    vip4, vip6 = vip_net.allocate()
    vip = str(vip4 if family == 4 else vip6)
    sides: list[Side] = []
    try:
        return _build(fabric, members, family, shape, advert_int, virtual_router_id, vip,
                      network, gateway, sides)
    except BaseException:
        for side in sides:
            with contextlib.suppress(Exception):
                main = side.pid("main")
                if main is not None:
                    os.killpg(main, signal.SIGKILL)
            fabric.delete_amphora(side.amphora)
        raise


def _build(fabric: LocalFabric, members: list[Endpoint], family: int, shape: str,
           advert_int: Decimal, virtual_router_id: int, vip: str, network: Any, gateway: Any,
           sides: list[Side]) -> Pair:
    for _ in range(2):
        amphora = fabric.create_amphora(topology="ACTIVE_STANDBY")
        vip_port = fabric.hotplug_port(amphora, "vip")
        member_port = fabric.hotplug_port(amphora, members[0].network)
        vrrp_ip = str(vip_port.ipv4 if family == 4 else vip_port.ipv6)
        with fabric.client(amphora) as client:
            client.plug_vip(vip, _vip_body(vip_port, family, network, gateway))
            client.plug_network(network_body(member_port))
            interface = client.get_interface(vrrp_ip)
        base_path = Path(agent_config.load(amphora.config_file).base_path)
        sides.append(Side(amphora, vip_port, member_port, vrrp_ip, interface, base_path))
    document = http_document(amphora_id=sides[0].amphora.id, vip=vip,
                             members=[(str(uuid.uuid4()), str(m.ipv4 if family == 4 else m.ipv6))
                                      for m in members])
    document["topology"] = "ACTIVE_STANDBY"
    document["amphorae"] = [{"id": s.amphora.id, "role": role, "vrrp_ip": s.vrrp_ip}
                            for s, role in zip(sides, ("MASTER", "BACKUP"), strict=True)]
    pair = Pair(fabric, document["id"], vip, shape, sides, document)
    for side in sides:
        with fabric.client(side.amphora) as client:
            config = agent_config.load(side.amphora.config_file)
            text = render_for(client, document, amphora_id=side.amphora.id,
                              base_path=config.base_path, cert_dir=config.base_cert_dir)
            client.upload_haproxy(side.amphora.id, pair.lb_id, text)
            client.lb_action(pair.lb_id, "start")
    for index, (side, role) in enumerate(zip(sides, ("MASTER", "BACKUP"), strict=True)):
        peer = sides[1 - index]
        if shape == "ours":
            text = _keepalived_ours(pair.lb_id, side, peer, role, vip, network, str(gateway),
                                    advert_int, virtual_router_id)
        else:
            text = _keepalived_octavia(pair.lb_id, side, peer, role, vip, network,
                                       str(gateway), virtual_router_id)
        pair.configs.append(text)
        with fabric.client(side.amphora) as client:
            client.upload_vrrp(text)
            client.vrrp_action("start")
        if index == 0:  # the intended master first: it wins the first election
            if pair.wait(lambda: pair.holds_vip(0), timeout=20.0) is None:
                raise RuntimeError("the first amphora never took the VIP")
    pair.wait_single_holder()
    return pair


# -- probing ---------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    start: float
    end: float
    ok: bool


class Prober:
    """New HTTP connections to ``address`` every ``interval`` seconds from ``namespace``.

    Runs an asyncio loop in a thread that entered the namespace (its sockets
    belong there); each probe is a separate connection with its own deadline,
    so a lost SYN does not delay the next probe.
    """

    def __init__(self, namespace: str, address: str, port: int = 80, *,
                 interval: float = 0.005, timeout: float = 1.0) -> None:
        self.namespace, self.address, self.port = namespace, address, port
        self.interval, self.timeout = interval, timeout
        self.probes: list[Probe] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    def _run(self) -> None:
        with netns.entered(self.namespace):
            asyncio.run(self._main())

    async def _one(self) -> None:
        start = time.monotonic()
        ok = False
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.address, self.port)
                writer.write(b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n")
                data = await reader.read()
                ok = data.startswith(b"HTTP/1.") and data.split(b"\r\n", 1)[0].split()[1:2] \
                    == [b"200"]
        except (OSError, TimeoutError, IndexError):
            ok = False
        finally:
            if writer is not None:
                writer.close()
        self.probes.append(Probe(start, time.monotonic(), ok))

    async def _main(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        while not self._stop.is_set():
            task = asyncio.create_task(self._one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(self.interval)
        if tasks:
            await asyncio.wait(tasks)

    def since(self, t0: float) -> list[Probe]:
        return [p for p in list(self.probes) if p.start >= t0]

    def failed(self, t0: float) -> int:
        return sum(1 for p in self.since(t0) if not p.ok)

    def wait_good(self, t0: float, timeout: float = 15.0) -> bool:
        """True once a probe started after ``t0`` succeeded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.ok for p in self.since(t0)):
                return True
            time.sleep(0.01)
        return False


def outage(probes: list[Probe], t0: float) -> float:
    """Seconds from the last good response before the first failed probe started
    after ``t0`` to the first good response of a probe started after that
    failure; 0.0 when no probe failed."""
    after = sorted((p for p in probes if p.start >= t0), key=lambda p: p.start)
    failed = [p for p in after if not p.ok]
    if not failed:
        return 0.0
    first_fail = failed[0].start
    before = [p.end for p in probes if p.ok and p.end <= first_fail]
    recovered = [p.end for p in probes if p.ok and p.start > first_fail]
    if not recovered:
        return float("inf")
    return min(recovered) - (max(before) if before else t0)
