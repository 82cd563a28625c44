"""The nftables rule that lets VRRP adverts in only from the configured peer.

VRRPv3 has no authentication: any host on the VRRP network could send an
advert with a higher priority and take the VIP. keepalived's
``check_unicast_src`` drops adverts from other sources in keepalived itself;
this table drops them in the kernel too, and also protects configs that do
not set it (Octavia's template). One table, ``inet amphora_vrrp``, replaced
in one ``nft -f -`` transaction each time a VRRP config is installed or
keepalived is started: for each VRRP instance, IP protocol 112 arriving on
its interface from any address other than its unicast peers is dropped.
An instance without unicast peers (multicast VRRP) gets no rule; the rule
is per interface and address family, so an IPv4 and an IPv6 instance on one
interface each keep their own peer.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable

from amphora_agent.vrrp.instances import VrrpInstanceFacts
from amphora_contract import netns

LOG = logging.getLogger(__name__)
NFT = "nft"
TABLE = "amphora_vrrp"


def render(instances: Iterable[VrrpInstanceFacts]) -> str:
    """The nft script (re)creating the table; values come parsed (instances.py)."""
    lines = [f"table inet {TABLE} {{}}", f"delete table inet {TABLE}",
             f"table inet {TABLE} {{", "  chain peers_only {",
             # before the per-interface filter tables (amphora_agent/network/rules.py)
             "    type filter hook prerouting priority filter - 10; policy accept;"]
    # Peers per (interface, family) over all instances: two instances on
    # one interface (an IPv4 and an IPv6 VIP) must not drop each other's peer.
    allowed: dict[tuple[str, int], set[str]] = {}
    for inst in instances:
        for peer in inst.peers:
            allowed.setdefault((inst.interface, peer.version), set()).add(str(peer))
    for (interface, version), peers in sorted(allowed.items()):
        family, nfproto = ("ip", "ipv4") if version == 4 else ("ip6", "ipv6")
        lines.append(f'    iifname "{interface}" meta nfproto {nfproto} meta l4proto vrrp '
                     f"{family} saddr != {{ {', '.join(sorted(peers))} }} counter drop")
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def apply(namespace: str, instances: Iterable[VrrpInstanceFacts]) -> None:
    """Install the table in ``namespace``; raises RuntimeError if nft refuses it."""
    script = render(instances)
    with netns.entered(namespace):
        proc = subprocess.run([NFT, "-f", "-"], input=script, capture_output=True, text=True,
                              timeout=30, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"nft failed: {proc.stderr.strip()[:500]}")
