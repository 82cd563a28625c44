"""Listener statistics drivers, loaded side by side from ``[statistics] drivers``.

Whoever receives statistics from amphorae (the health manager) hands each
batch to :class:`StatsPublisher`. ``state_store`` (the default) passes them to
the writer the state store provides; ``prometheus`` keeps the latest values
per amphora and listener and serves them on a loopback port for a Prometheus
server to scrape (docs/controller.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LOG = logging.getLogger("amphora-controller.statistics")


@dataclass(frozen=True)
class ListenerStats:
    """One listener's counters as an amphora reports them (Octavia's field names)."""

    amphora_id: str
    listener_id: str
    active_connections: int
    bytes_in: int
    bytes_out: int
    request_errors: int
    total_connections: int


class StatsDriver(Protocol):
    def update(self, stats: list[ListenerStats]) -> None:
        """Record one batch."""

    def close(self) -> None:
        """Release what the driver holds (ports, threads)."""


class StateStoreStats:
    """Hands batches to the state store's writer (set by the health manager)."""

    def __init__(self, writer: Callable[[list[ListenerStats]], None] | None = None) -> None:
        self.writer = writer

    def update(self, stats: list[ListenerStats]) -> None:
        if self.writer is not None:
            self.writer(stats)

    def close(self) -> None:
        pass


class PrometheusStats:
    """The latest statistics per amphora and listener, served in Prometheus' text format."""

    _COUNTERS = ("bytes_in", "bytes_out", "request_errors", "total_connections")

    def __init__(self, host: str = "127.0.0.1", port: int = 9102) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], ListenerStats] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        # port 0: any free port (tests); the bound one is in ``self.port``
        self._server: Any
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.port: int = self._server.server_port

    def update(self, stats: list[ListenerStats]) -> None:
        with self._lock:
            for item in stats:
                self._latest[(item.amphora_id, item.listener_id)] = item

    def collect(self) -> Iterable[Any]:
        labels = ["amphora_id", "listener_id"]
        with self._lock:
            latest = list(self._latest.values())
        active = GaugeMetricFamily("amphora_listener_active_connections",
                                   "Connections open on the listener now", labels=labels)
        counters = {name: CounterMetricFamily(f"amphora_listener_{name}",
                                              f"Listener {name.replace('_', ' ')}",
                                              labels=labels)
                    for name in self._COUNTERS}
        for item in latest:
            key = [item.amphora_id, item.listener_id]
            active.add_metric(key, item.active_connections)
            for name, family in counters.items():
                family.add_metric(key, getattr(item, name))
        yield active
        yield from counters.values()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class StatsPublisher:
    drivers: list[StatsDriver]

    def update(self, stats: list[ListenerStats]) -> None:
        for driver in self.drivers:
            try:
                driver.update(stats)
            except Exception:
                LOG.exception("statistics driver %s failed", type(driver).__name__)

    def close(self) -> None:
        for driver in self.drivers:
            driver.close()


def make_driver(name: str, options: dict[str, str]) -> StatsDriver:
    if name == "state_store":
        return StateStoreStats()
    if name == "prometheus":
        host = options.get("prometheus_host", "127.0.0.1")
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("[statistics] prometheus_host: a loopback address")
        return PrometheusStats(host, int(options.get("prometheus_port", "9102")))
    raise ValueError(f"unknown statistics driver {name!r} (available: state_store, prometheus)")


def from_options(options: dict[str, str]) -> StatsPublisher:
    """The publisher for ``[statistics]``: ``drivers`` is a comma-separated list."""
    names = [n.strip() for n in options.get("drivers", "state_store").split(",") if n.strip()]
    return StatsPublisher([make_driver(name, options) for name in names])
