"""Test helpers on top of the local fabric: request bodies, listeners, probes, snapshots."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from typing import Any

from amphora_contract import netns
from controller_stub.compute import nsutil
from controller_stub.compute.local import PREFIX, LocalFabric, network_body, vip_body

__all__ = [
    "PREFIX",
    "Listener",
    "LocalFabric",
    "fetch",
    "network_body",
    "probe",
    "snapshot",
    "vip_body",
]


class Listener:
    """A TCP server inside a namespace that answers each connection with ``reply``.

    The socket is created in a thread that entered the namespace, so it
    belongs there; accepting then works from any thread.
    """

    def __init__(self, namespace: str, address: str, port: int, reply: bytes = b"hello") -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET

        def make() -> socket.socket:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(16)
            return sock

        self.sock = nsutil.run_in(namespace, make)
        self.sock.settimeout(0.2)
        self.reply = reply
        self.peers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                self.peers.append(peer[0])
                conn.sendall(self.reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def probe(namespace: str, address: str, port: int, timeout: float = 2.0) -> bytes | None:
    """Connect from ``namespace`` and read what the peer says; None if unreachable."""
    def connect() -> bytes | None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect((address, port))
                return sock.recv(1024)
            except OSError:
                return None
    return nsutil.run_in(namespace, connect)


def fetch(namespace: str, address: str, port: int = 80, timeout: float = 3.0) -> dict[str, Any]:
    """HTTP GET from ``namespace``; the member's JSON answer."""
    def get() -> dict[str, Any]:
        host = f"[{address}]" if ":" in address else address
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect((address, port))
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])
    return nsutil.run_in(namespace, get)


def _ip_json(namespace: str, *args: str) -> Any:
    with netns.entered(namespace):
        out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")


def snapshot(namespace: str) -> dict[str, Any]:
    """Addresses, routes, rules and nftables of a namespace, without kernel noise
    (link-local, multicast, local table, tentative flags) so two boots compare equal."""
    addresses = sorted(
        (link["ifname"], link.get("address"), link.get("mtu"), a["local"], a["prefixlen"])
        for link in _ip_json(namespace, "addr") if link["ifname"] != "lo"
        for a in link.get("addr_info", []) if a.get("scope") == "global")
    routes = []
    for family in ("-4", "-6"):
        for r in _ip_json(namespace, family, "route", "show", "table", "all"):
            if r.get("table") in ("local",) or r.get("dst", "").startswith(("fe80", "ff00")):
                continue
            routes.append((family, r.get("table", "main"), r.get("dst"), r.get("gateway"),
                           r.get("dev"), r.get("prefsrc"), tuple(r.get("flags", []))))
    rules = sorted((family, r.get("priority"), r.get("src"), r.get("srclen"), r.get("table"))
                   for family in ("-4", "-6") for r in _ip_json(namespace, family, "rule"))
    with netns.entered(namespace):
        nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True,
                             check=True).stdout
    return {"addresses": addresses, "routes": sorted(routes), "rules": rules, "nft": nft}

