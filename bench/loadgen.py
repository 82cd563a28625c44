"""A small HTTP load generator that counts failures exactly.

Runs as threads that entered a client namespace, so every socket lives
there. Two modes: a new TCP connection per request, and one kept-alive
connection (reconnecting after a failure, which is counted).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field

from amphora_agent import netns


@dataclass
class LoadStats:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    last_headers: dict[str, str] = field(default_factory=dict)

    def fail(self, exc: BaseException | str) -> None:
        self.failed += 1
        key = exc if isinstance(exc, str) else type(exc).__name__
        self.errors[key] = self.errors.get(key, 0) + 1


class Load:
    def __init__(self, namespace: str, host: str, port: int, *, keep_alive: bool,
                 pause: float = 0.0, timeout: float = 5.0) -> None:
        self.namespace, self.host, self.port = namespace, host, port
        self.keep_alive, self.pause, self.timeout = keep_alive, pause, timeout
        self.stats = LoadStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> LoadStats:
        self._stop.set()
        self._thread.join(10)
        return self.stats

    def reset(self) -> None:
        self.stats = LoadStats()

    def _run(self) -> None:
        with netns.entered(self.namespace):
            conn: http.client.HTTPConnection | None = None
            while not self._stop.is_set():
                stats = self.stats
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(self.host, self.port,
                                                          timeout=self.timeout)
                    headers = {} if self.keep_alive else {"Connection": "close"}
                    conn.request("GET", "/", headers=headers)
                    response = conn.getresponse()
                    response.read()
                    if response.status == 200:
                        stats.ok += 1
                        stats.last_headers = {k.lower(): v for k, v in response.getheaders()}
                    else:
                        stats.fail(f"HTTP {response.status}")
                    if not self.keep_alive or response.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as exc:
                    stats.fail(exc)
                    if conn is not None:
                        conn.close()
                    conn = None
                if self.pause:
                    time.sleep(self.pause)
            if conn is not None:
                conn.close()
