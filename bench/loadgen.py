"""A small HTTP load generator that counts failures exactly.

Each stream is its own process (so the benchmark's timing thread does not
share a GIL with the load) that entered a client namespace. Two modes: a new
TCP connection per request, and one kept-alive connection (reconnecting when
the server says it will close; a request that fails is counted).
"""

from __future__ import annotations

import http.client
import multiprocessing
import time
from dataclasses import dataclass, field
from typing import Any

from amphora_contract import netns

_ctx = multiprocessing.get_context("fork")


@dataclass
class LoadStats:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def _run(namespace: str, host: str, port: int, keep_alive: bool, timeout: float,
         ok: Any, failed: Any, generation: Any, stop: Any, errors: Any) -> None:
    counts: dict[str, int] = {}
    with netns.entered(namespace):
        conn: http.client.HTTPConnection | None = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request("GET", "/", headers={} if keep_alive else {"Connection": "close"})
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    with ok.get_lock():
                        ok.value += 1
                    gen = response.getheader("X-Generation")
                    if gen is not None:
                        generation.value = int(gen)
                else:
                    with failed.get_lock():
                        failed.value += 1
                    counts[f"HTTP {response.status}"] = counts.get(
                        f"HTTP {response.status}", 0) + 1
                if not keep_alive or response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with failed.get_lock():
                    failed.value += 1
                name = type(exc).__name__
                counts[name] = counts.get(name, 0) + 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
    errors.put(counts)


class Load:
    def __init__(self, namespace: str, host: str, port: int, *, keep_alive: bool,
                 timeout: float = 5.0) -> None:
        self.ok = _ctx.Value("q", 0)
        self.failed = _ctx.Value("q", 0)
        self.generation = _ctx.Value("q", -1)
        self._stop = _ctx.Event()
        self._errors: Any = _ctx.Queue()
        self._proc = _ctx.Process(target=_run, daemon=True, args=(
            namespace, host, port, keep_alive, timeout, self.ok, self.failed,
            self.generation, self._stop, self._errors))

    def start(self) -> Load:
        self._proc.start()
        return self

    @property
    def stats(self) -> LoadStats:
        return LoadStats(self.ok.value, self.failed.value)

    def reset(self) -> None:
        with self.ok.get_lock():
            self.ok.value = 0
        with self.failed.get_lock():
            self.failed.value = 0

    def wait_generation(self, generation: int, start: float, timeout: float = 10) -> float:
        """Seconds from ``start`` until a response carries ``generation``."""
        while time.perf_counter() - start < timeout:
            if self.generation.value == generation:
                return time.perf_counter() - start
            time.sleep(0.0005)
        raise TimeoutError(f"generation {generation} never served")

    def stop(self) -> LoadStats:
        self._stop.set()
        stats = self.stats
        try:
            stats.errors = self._errors.get(timeout=10)
        finally:
            self._proc.join(10)
        return stats
