"""What an installed keepalived config says about its VRRP instances.

The agent needs three facts from the uploaded config, whoever rendered it
(keepalived/ or Octavia's template): the VRRP interface, the unicast peers
and the VIPs. It reads them with keepalived's own word split
(:func:`amphora_agent.vrrp.confcheck.words`) and keeps only values that parse
as interface names and IP addresses, so nothing from the file reaches an
nft script or an ``ip`` command unvalidated.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from amphora_agent.vrrp.confcheck import words

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")


@dataclass(frozen=True)
class Vip:
    address: IPAddress
    interface: str


@dataclass(frozen=True)
class VrrpInstanceFacts:
    name: str
    interface: str
    peers: tuple[IPAddress, ...]
    vips: tuple[Vip, ...]


@dataclass
class _Node:
    words: list[str]
    children: list[_Node]


def _tokens(text: str) -> list[list[str] | str]:
    """Lines as word lists, with ``{`` and ``}`` split out as their own items."""
    out: list[list[str] | str] = []
    for line in text.splitlines():
        current: list[str] = []
        for word in words(line):
            for piece in re.split(r"([{}])", word):
                if piece in ("{", "}"):
                    if current:
                        out.append(current)
                        current = []
                    out.append(piece)
                elif piece:
                    current.append(piece)
        if current:
            out.append(current)
    return out


def _tree(text: str) -> list[_Node]:
    root: list[_Node] = []
    stack: list[list[_Node]] = [root]
    for item in _tokens(text):
        if item == "{":
            parent = stack[-1][-1] if stack[-1] else None
            if parent is None:  # a bare block: give it an anonymous node
                parent = _Node([], [])
                stack[-1].append(parent)
            stack.append(parent.children)
        elif item == "}":
            if len(stack) > 1:
                stack.pop()
        elif isinstance(item, list):
            stack[-1].append(_Node(item, []))
    return root


def _ip(word: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(word.split("/", 1)[0])
    except ValueError:
        return None


def parse(text: str) -> list[VrrpInstanceFacts]:
    """The VRRP instances of a keepalived config; values that do not parse are dropped."""
    found = []
    for node in _tree(text):
        if not node.words or node.words[0] != "vrrp_instance" or len(node.words) < 2:
            continue
        interface = ""
        peers: list[IPAddress] = []
        vip_words: list[list[str]] = []
        for child in node.children:
            key = child.words[0] if child.words else ""
            if key == "interface" and len(child.words) > 1 and IFNAME_RE.fullmatch(
                    child.words[1]):
                interface = child.words[1]
            elif key == "unicast_peer":
                peers.extend(ip for c in child.children if c.words
                             if (ip := _ip(c.words[0])) is not None)
            elif key in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
                vip_words.extend(c.words for c in child.children if c.words)
        if not interface:
            continue
        vips = []
        for entry in vip_words:
            address = _ip(entry[0])
            if address is None:
                continue
            dev = interface
            if "dev" in entry[1:-1]:
                candidate = entry[entry.index("dev", 1) + 1]
                if IFNAME_RE.fullmatch(candidate):
                    dev = candidate
            vips.append(Vip(address, dev))
        found.append(VrrpInstanceFacts(node.words[1], interface, tuple(peers), tuple(vips)))
    return found


def load(path: Path) -> list[VrrpInstanceFacts]:
    try:
        return parse(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return []
