"""Listener statistics drivers, loaded side by side from ``[statistics] drivers``.

The health manager hands every batch of verified heartbeats' listener
statistics to :class:`StatsPublisher`. Every driver receives what the
heartbeats carry: *increments* of bytes in/out, total connections and
request errors since the amphora's previous heartbeat, and the current
number of active connections; each keeps its own running totals.

- ``state_store`` (the default) sums the increments into
  ``listener_statistics`` inside the writer's batch transaction (one upsert
  per batch; a rolled-back batch counts nowhere).
- ``prometheus`` sums them in memory per amphora and listener once the batch
  has committed, and serves the totals on a loopback port for a Prometheus
  server to scrape; it forgets amphorae and listeners the store no longer
  has, so a failover's dead amphora does not stay a series forever.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from controller_stub.controller import models

LOG = logging.getLogger("amphora-controller.statistics")
_STATS = models.ListenerStatistics.__table__
_CHUNK = 5000  # ids per IN (below SQLite's 32,766 bound parameters)


class ListenerStats(NamedTuple):
    """One listener's statistics from one heartbeat (Octavia's field names):
    increments since the amphora's previous heartbeat, ``active_connections``
    as it is now. A named tuple: the writer makes one per listener per
    heartbeat, and a tuple is the cheapest record to make and to read."""

    amphora_id: str
    listener_id: str
    active_connections: int
    bytes_in: int
    bytes_out: int
    request_errors: int
    total_connections: int


_SUMMED = ListenerStats._fields[3:]  # the increments, in the order they are kept

class StatsDriver(Protocol):
    def store(self, session: Session, stats: Sequence[ListenerStats]) -> None:
        """Record a batch inside its transaction (an error rolls the batch back)."""

    def publish(self, stats: Sequence[ListenerStats]) -> None:
        """Record a batch once its transaction has committed."""

    def prune(self, session: Session) -> int:
        """Forget what the store no longer has; the number of series dropped."""

    def close(self) -> None:
        """Release what the driver holds (ports, threads)."""


class StateStoreStats:
    """Sums the increments into ``listener_statistics``, in the batch's transaction."""

    def store(self, session: Session, stats: Sequence[ListenerStats]) -> None:
        if not stats:
            return
        conn = session.connection()
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        upsert = insert(_STATS)
        conn.execute(upsert.on_conflict_do_update(
            index_elements=[_STATS.c.listener_id, _STATS.c.amphora_id],
            set_={"active_connections": upsert.excluded.active_connections,
                  **{name: _STATS.c[name] + upsert.excluded[name] for name in _SUMMED}}),
            [s._asdict() for s in stats])

    def publish(self, stats: Sequence[ListenerStats]) -> None:
        pass

    def prune(self, session: Session) -> int:
        return 0  # rows of deleted amphorae go with their flow and housekeeping

    def close(self) -> None:
        pass


def _existing(session: Session, column: Any, ids: Iterable[str]) -> set[str]:
    """The ``ids`` that ``column`` (a primary key) still holds."""
    wanted = sorted(ids)
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        found.update(session.scalars(select(column).where(
            column.in_(wanted[start:start + _CHUNK]))))
    return found


class PrometheusStats:
    """Running totals per amphora and listener, served in Prometheus' text format."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9102) -> None:
        self._lock = threading.Lock()
        # (amphora id, listener id) -> [active_connections, *_SUMMED totals]
        self._totals: dict[tuple[str, str], list[int]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        # port 0: any free port (tests); the bound one is in ``self.port``
        self._server: Any
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.port: int = self._server.server_port

    def store(self, session: Session, stats: Sequence[ListenerStats]) -> None:
        pass  # counted once committed: a rolled-back batch counts nowhere

    def publish(self, stats: Sequence[ListenerStats]) -> None:
        with self._lock:
            for amphora_id, listener_id, active, *increments in stats:
                totals = self._totals.get((amphora_id, listener_id))
                if totals is None:
                    self._totals[(amphora_id, listener_id)] = [active, *increments]
                    continue
                totals[0] = active
                for i, value in enumerate(increments, 1):
                    totals[i] += value

    def prune(self, session: Session) -> int:
        with self._lock:
            keys = list(self._totals)
        if not keys:
            return 0
        amphorae = _existing(session, models.Amphora.id, {amp for amp, _ in keys})
        listeners = _existing(session, models.Listener.id, {li for _, li in keys})
        gone = [key for key in keys if key[0] not in amphorae or key[1] not in listeners]
        with self._lock:
            for key in gone:
                self._totals.pop(key, None)
        return len(gone)

    def collect(self) -> Iterable[Any]:
        labels = ["amphora_id", "listener_id"]
        with self._lock:
            rows = [(key, list(totals)) for key, totals in self._totals.items()]
        active = GaugeMetricFamily("amphora_listener_active_connections",
                                   "Connections open on the listener now", labels=labels)
        counters = [CounterMetricFamily(f"amphora_listener_{name}",
                                        f"Listener {name.replace('_', ' ')}", labels=labels)
                    for name in _SUMMED]
        for key, totals in rows:
            active.add_metric(list(key), totals[0])
            for family, value in zip(counters, totals[1:], strict=True):
                family.add_metric(list(key), value)
        yield active
        yield from counters

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class StatsPublisher:
    drivers: list[StatsDriver]

    def store(self, session: Session, stats: Sequence[ListenerStats]) -> None:
        """Every driver's part of the batch's transaction; an error propagates."""
        for driver in self.drivers:
            driver.store(session, stats)

    def publish(self, stats: Sequence[ListenerStats]) -> None:
        """After the commit; a failing driver is logged and the others go on."""
        if not stats:
            return
        for driver in self.drivers:
            try:
                driver.publish(stats)
            except Exception:
                LOG.exception("statistics driver %s failed", type(driver).__name__)

    def prune(self, session: Session) -> int:
        return sum(driver.prune(session) for driver in self.drivers)

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
