"""VRRPv3 has no authentication: a host on the VIP network could send an
advert with a higher priority and take the VIP. The agent lets VRRP in only
from the configured peer (nftables, amphora_agent/vrrp/firewall.py), on top
of keepalived's ``check_unicast_src``. The forged advert is crafted here with
a raw socket from a rogue namespace on the VIP network; the last step removes
both protections and shows the same advert does move the VIP."""

from __future__ import annotations

import ipaddress
import socket
import struct
import subprocess
import time
from collections.abc import Callable

import pytest

from controller_stub.active_standby import Pair
from controller_stub.compute import nsutil
from controller_stub.compute.local import LocalFabric

pytestmark = pytest.mark.root
VRRP = 112


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def vrrpv3_advert(src: str, dst: str, vrid: int, priority: int, vip: str,
                  advert_cs: int = 10) -> bytes:
    """A VRRPv3 advertisement (RFC 5798 section 5.1) for an IPv4 VIP."""
    body = struct.pack("!BBBBHH", 0x31, vrid, priority, 1, advert_cs & 0x0FFF, 0)
    body += ipaddress.IPv4Address(vip).packed
    pseudo = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
              + struct.pack("!BBH", 0, VRRP, len(body)))
    checksum = _checksum(pseudo + body)
    return body[:6] + struct.pack("!H", checksum) + body[8:]


def forge(namespace: str, src: str, dst: str, vrid: int, vip: str, seconds: float) -> None:
    """Send priority-254 adverts to ``dst`` every 20 ms from ``namespace``."""
    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP) as sock:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)  # RFC 5798: TTL 255
            packet = vrrpv3_advert(src, dst, vrid, 254, vip)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                sock.sendto(packet, (dst, 0))
                time.sleep(0.02)
    nsutil.run_in(namespace, send)


def dropped(namespace: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", namespace, "nft", "list", "table", "inet",
                          "amphora_vrrp"], capture_output=True, text=True, check=True).stdout
    return sum(int(w) for line in out.splitlines() if "drop" in line and "packets " in line
               for w in [line.split("packets ")[1].split()[0]])


def held_throughout(pair: Pair, rogue: str, vip_src: str, seconds: float) -> bool:
    """Forge adverts for ``seconds`` while watching the master keep the VIP."""
    import threading

    lost = threading.Event()

    def watch() -> None:
        end = time.monotonic() + seconds + 0.5
        while time.monotonic() < end:
            if not pair.holds_vip(0):
                lost.set()
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    forge(rogue, vip_src, pair.sides[0].vrrp_ip, 1, pair.vip, seconds)
    watcher.join()
    return not lost.is_set()


def test_forged_adverts_do_not_move_the_vip(fabric: LocalFabric,
                                            make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(virtual_router_id=1)
    rogue = fabric.create_client("vip", name="rogue")
    try:
        master_ns = pair.sides[0].amphora.haproxy_namespace
        src = str(rogue.ipv4)
        # Both protections (the agent's rule, keepalived's check_unicast_src).
        assert held_throughout(pair, rogue.namespace, src, 1.0)
        first = dropped(master_ns)
        assert first > 0

        # A config without check_unicast_src (Octavia's template has none):
        # the agent's rule alone keeps the forged adverts out.
        unchecked = pair.configs[0].replace("    check_unicast_src\n", "")
        assert unchecked != pair.configs[0]
        with pair.client(0) as client:
            client.upload_vrrp(unchecked)
            client.vrrp_action("reload")
        assert pair.wait(lambda: pair.holders() == [0], timeout=5.0) is not None
        assert held_throughout(pair, rogue.namespace, src, 1.0)
        assert dropped(master_ns) > 0

        # Without the rule the same adverts take the VIP away from the master.
        subprocess.run(["ip", "netns", "exec", master_ns, "nft", "delete", "table", "inet",
                        "amphora_vrrp"], check=True)
        assert not held_throughout(pair, rogue.namespace, src, 1.0)
    finally:
        fabric.delete_endpoint(rogue)
