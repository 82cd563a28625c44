"""Gratuitous ARP and unsolicited neighbour advertisements for a VIP.

In SINGLE topology the agent owns the VIP (in ACTIVE_STANDBY keepalived
announces it), so after plugging it tells the subnet's neighbours and router
where the address now lives, as a VM coming back on a new port must. Raw
sockets created inside the namespace, so no ``arping``/``ndisc6`` is needed.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct

from amphora_agent.network import schema
from amphora_contract import netns

LOG = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_OVERRIDE = 0x20000000
ALL_NODES = "ff02::1"


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def arp_frame(mac: str, address: ipaddress.IPv4Address, *, reply: bool = False) -> bytes:
    """A broadcast gratuitous ARP (sender and target protocol address both ``address``)."""
    own = _mac_bytes(mac)
    target_mac = b"\xff" * 6 if reply else b"\x00" * 6
    header = b"\xff" * 6 + own + struct.pack("!H", ETH_P_ARP)
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2 if reply else 1)
    body += own + address.packed + target_mac + address.packed
    return header + body


def na_message(mac: str, address: ipaddress.IPv6Address) -> bytes:
    """ICMPv6 unsolicited NA with the override flag and a target link-layer option."""
    return (struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_OVERRIDE)
            + address.packed + struct.pack("!BB", 2, 1) + _mac_bytes(mac))


def _send_arp(ifname: str, mac: str, address: ipaddress.IPv4Address, count: int) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((ifname, ETH_P_ARP))
        for i in range(count):
            sock.send(arp_frame(mac, address, reply=bool(i % 2)))


def _send_na(ifname: str, mac: str, address: ipaddress.IPv6Address, count: int) -> None:
    index = socket.if_nametoindex(ifname)
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.bind((str(address), 0, 0, index))
        for _ in range(count):
            sock.sendto(na_message(mac, address), (ALL_NODES, 0, 0, index))


def announce(namespace: str, ifname: str, mac: str, addresses: tuple[schema.IPAddress, ...],
             count: int = 2) -> None:
    """Best effort: a failed announcement is logged, never fails the plug."""
    with netns.entered(namespace):
        for address in addresses:
            try:
                if isinstance(address, ipaddress.IPv4Address):
                    _send_arp(ifname, mac, address, count)
                else:
                    _send_na(ifname, mac, address, count)
            except OSError as exc:
                LOG.warning("could not announce %s on %s: %s", address, ifname, exc)
