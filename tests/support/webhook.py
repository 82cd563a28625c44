"""A webhook receiver on loopback that records what it is sent (and can fail on purpose)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers 500 to the first ``fail_first`` POSTs, 204 after; records every one.

    While ``hold`` is set, each POST waits (up to 10 s) until it is cleared: a
    slow receiver."""

    fail_first: int = 0
    hold: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(Received(dict(self.headers.items()), body))
                if receiver.hold.is_set():
                    receiver.released.wait(10)
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> list[Received]:
        """Poll until ``predicate(requests)`` holds; the requests so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.requests)):
                return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"receiver condition not met in {timeout}s: "
                             f"{[r.body[:200] for r in self.requests]}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
