"""A backend member for the local fabric: an HTTP server that says who answered.

Runs inside its own namespace (started with ``nsenter --net``), dual-stack on
``::``. ``GET /anything`` answers ``{"member": NAME, "client": ADDRESS}`` so
a test can tell which member a load balancer picked and from where.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def make_handler(name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "amphora-member"

        def do_GET(self) -> None:
            client = self.client_address[0].removeprefix("::ffff:")
            body = json.dumps({"member": name, "client": client}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amphora-fabric-member")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--fabric", default="", help="owning fabric's prefix (for cleanup checks)")
    args = parser.parse_args(argv)
    server = _DualStackServer(("::", args.port), make_handler(args.name))
    print(f"member {args.name} listening on port {args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
