"""Network namespaces for tests, and small clients and servers inside them.

A thread that enters a namespace (``amphora_contract.netns.entered``) creates
sockets that stay in it, so servers and clients run as threads of the test
process, with no helper processes to leak.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from amphora_contract import netns

PREFIX = "amp-t-"


def create(prefix: str = PREFIX) -> str:
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


def destroy(name: str) -> None:
    """Kill everything left in the namespace, then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                          check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@contextlib.contextmanager
def namespace(prefix: str = PREFIX) -> Iterator[str]:
    name = create(prefix)
    try:
        yield name
    finally:
        destroy(name)


def link(ns_a: str, address_a: str, ns_b: str, address_b: str, ifname: str = "eth1") -> None:
    """A veth between two namespaces, ``ifname`` on both sides, up, with an
    address (``a.b.c.d/len``) on each end."""
    subprocess.run(["ip", "link", "add", "veth-a", "netns", ns_a, "type", "veth", "peer",
                    "name", "veth-b", "netns", ns_b], check=True)
    for ns, dev, address in ((ns_a, "veth-a", address_a), (ns_b, "veth-b", address_b)):
        subprocess.run(["ip", "-n", ns, "link", "set", dev, "name", ifname], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", ifname, "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", address, "dev", ifname], check=True)


def http_get(ns: str, host: str, port: int, path: str = "/", *, timeout: float = 5.0,
             keep: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    with netns.entered(ns):
        conn = keep or http.client.HTTPConnection(host, port, timeout=timeout)
        if keep is None:
            conn.connect()
    try:
        conn.request("GET", path, headers={} if keep else {"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if keep is None:
            conn.close()


class Member:
    """An HTTP server in a namespace that answers with its own name."""

    def __init__(self, ns: str, address: str, port: int, name: str) -> None:
        member_name = name.encode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(member_name)))
                self.end_headers()
                self.wfile.write(member_name)

            def log_message(self, *_args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # health checks connect and reset; that is not an error

        with netns.entered(ns):
            self.server = Server((address, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
