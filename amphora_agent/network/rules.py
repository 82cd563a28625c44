"""nftables rules for an interface: what may reach the load balancer through it.

One table per interface (``inet amphora_ethN``), replaced in one ``nft -f -``
transaction (create-if-missing, delete, recreate), so there is never a moment
without rules. The ruleset is generated from parsed values only: protocol is
one of four constants, the CIDR an :mod:`ipaddress` network, the port an int,
the interface name a checked ``ethN``.

Unlike Octavia's SR-IOV ``ingress`` hook this chain sits on ``prerouting``
after conntrack, so replies to connections the amphora opened through the
interface (health checks to members on the VIP network) are accepted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from amphora_agent.errors import ApiError
from amphora_agent.network import interfaces, schema
from amphora_contract import netns

NFT = "nft"
TABLE_PREFIX = "amphora_"

# What every interface lets in: path-MTU discovery, neighbour discovery, DHCP.
_BASE = (
    "ct state established,related accept",
    "icmp type destination-unreachable accept",
    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, "
    "packet-too-big, destination-unreachable } accept",
    "udp sport 67 udp dport 68 accept",
    "udp sport 547 udp dport 546 accept",
)


def table_name(ifname: str) -> str:
    interfaces.index_of(ifname)  # raises unless ethN
    return TABLE_PREFIX + ifname


def _rule_line(rule: schema.Rule) -> list[str]:
    source = ""
    if rule.cidr is not None and rule.cidr.prefixlen:
        family = "ip6" if rule.cidr.version == 6 else "ip"
        source = f"{family} saddr {rule.cidr} "
    if rule.protocol == "vrrp":
        if rule.cidr is not None and rule.cidr.prefixlen:
            family = "ip6 nexthdr" if rule.cidr.version == 6 else "ip protocol"
            return [f"{source}{family} vrrp accept"]
        return ["ip protocol vrrp accept", "ip6 nexthdr vrrp accept"]
    protocol = rule.protocol.lower()
    return [f"{source}{protocol} dport {int(rule.port or 0)} accept"]


def render(ifname: str, rules: Iterable[schema.Rule]) -> str:
    """The nft script that (re)creates the interface's table with ``rules``."""
    table = table_name(ifname)
    lines = [
        f"table inet {table} {{}}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        "  chain filter {",
        "    type filter hook prerouting priority filter; policy accept;",
        f'    iifname != "{ifname}" accept',
        *(f"    {line}" for line in _BASE),
    ]
    for rule in rules:
        lines.extend(f"    {line}" for line in _rule_line(rule))
    lines += ["    drop", "  }", "}", ""]
    return "\n".join(lines)


def render_delete(ifname: str) -> str:
    table = table_name(ifname)
    return f"table inet {table} {{}}\ndelete table inet {table}\n"


def _nft(namespace: str, script: str) -> None:
    with netns.entered(namespace):
        proc = subprocess.run([NFT, "-f", "-"], input=script, capture_output=True,
                              text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise ApiError(f"nft failed: {proc.stderr.strip()[:500]}")


def apply(namespace: str, ifname: str, rules: Iterable[schema.Rule]) -> None:
    _nft(namespace, render(ifname, rules))


def remove(namespace: str, ifname: str) -> None:
    _nft(namespace, render_delete(ifname))
