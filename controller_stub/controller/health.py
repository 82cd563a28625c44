"""The health manager: heartbeats into the store, stale amphorae into failovers.

The :class:`~controller_stub.health_listener.HealthListener` verifies
datagrams and hands messages over a bounded queue (a full queue drops and
counts). Messages are collected per amphora (the newest wins; the one it
replaces is counted as superseded) and written by
:class:`~controller_stub.controller.health_writer.StatusWriter` in batches,
one transaction per batch: last-seen times, operating statuses mapped as
Octavia's ``update_db`` maps them, and listener statistics, which go through
the ``[statistics]`` drivers (:mod:`controller_stub.controller.statistics`):
their transactional part in the batch, the rest once it has committed. The
checker also lets the drivers forget amphorae and listeners that are gone.

A checker thread finds amphorae whose last heartbeat is older than
``timeout`` and starts a ``failover`` flow for each, unless more than
``breaker_threshold`` of the monitored amphorae are stale at once: that
looks like a controller or network fault, so the circuit breaker opens,
nothing is failed over, and it closes when heartbeats return (or an
operator resets it).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from amphora_contract.heartbeat import HeartbeatVerifier
from controller_stub.controller import models
from controller_stub.controller.constants import (
    AMPHORA_ALLOCATED,
    FLOW_PENDING,
    FLOW_RUNNING,
    PENDING_DELETE,
)
from controller_stub.controller.health_writer import StatusWriter
from controller_stub.controller.statistics import StatsPublisher
from controller_stub.health_listener import HealthListener

LOG = logging.getLogger(__name__)
SO_MEMINFO, SK_MEMINFO_DROPS = 55, 8  # Linux; the socket module names neither

@dataclass(frozen=True)
class HealthSettings:
    """``[health_manager]`` of the controller's config (docs/controller.md)."""

    enabled: bool = False
    bind_ip: str = ""            # empty: the fabric's management gateway
    bind_port: int = 5555
    master_key: str = ""         # version-4 keys are derived per amphora from it
    accept_v3: bool = False      # version 3 signed with master_key (Octavia's agent)
    heartbeat_interval: int = 2    # given to amphorae booted by this controller
    timeout: float = 0.0         # 0: 3 x heartbeat_interval
    check_interval: float = 0.0  # 0: heartbeat_interval / 2
    breaker_threshold: float = 0.5
    breaker_min_stale: int = 2   # one stale amphora is an amphora fault, never a breaker
    failover: bool = True
    batch_size: int = 500
    queue_size: int = 4096

    @property
    def stale_after(self) -> float:
        return self.timeout or 3.0 * self.heartbeat_interval


class _FabricListener(HealthListener):
    """A listener whose sockets live in the fabric namespace, where the
    amphorae's management network ends; its threads stay in ours."""

    def __init__(self, namespace: str | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._namespace = namespace

    def _bind(self) -> None:
        if self._namespace is None:
            super()._bind()
            return
        from controller_stub.compute import nsutil

        nsutil.run_in(self._namespace, super()._bind)

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped because the receive buffer was full
        (``SO_MEMINFO``'s drop count, summed over the sockets): load shed
        before the listener could even count it."""
        total = 0
        for sock in self.sockets:
            with contextlib.suppress(OSError):  # closed
                total += struct.unpack("9I", sock.getsockopt(
                    socket.SOL_SOCKET, SO_MEMINFO, 36))[SK_MEMINFO_DROPS]
        return total


_SUMMED = ("rx", "tx", "totconns", "ereq")  # increments since the last heartbeat


def _carry_increments(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """``newer`` with ``older``'s statistics increments added: statuses are
    the newest, the counters lose nothing when a message is superseded."""
    listeners = dict(newer["listeners"])
    for listener_id, old in older["listeners"].items():
        new = listeners.get(listener_id)
        if new is None:
            continue
        stats = dict(new["stats"])
        for key in _SUMMED:
            stats[key] += old["stats"][key]
        listeners[listener_id] = {**new, "stats": stats}
    return {**newer, "listeners": listeners}


class HealthManager:
    """Listener, batch writer and stale checker of one controller process."""

    def __init__(self, sessions: sessionmaker[Session], settings: HealthSettings, *,
                 namespace: str | None, bind_ip: str,
                 start_failover: Callable[[str, str], bool],
                 statistics: StatsPublisher | None = None) -> None:
        """``statistics``: the ``[statistics]`` drivers (default: the state store)."""
        self.sessions = sessions
        self.settings = settings
        self._start_failover = start_failover
        self.listener = _FabricListener(
            namespace, HeartbeatVerifier(
                master_key=settings.master_key,
                v3_key=settings.master_key if settings.accept_v3 else None), self._collect,
            addresses=[(bind_ip, settings.bind_port)], queue_size=settings.queue_size,
            receive_buffer=4 << 20)
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.writer = StatusWriter(statistics=statistics)
        self.statistics = self.writer.statistics
        self.received = 0    # messages handed over by the listener
        self.superseded = 0  # replaced by the same amphora's newer message before being written
        self.stored = 0      # messages written
        self.batches = 0
        self.failed_batches = 0
        self.backlog_peak = 0  # most amphorae waiting for the writer at once
        self.breaker_open = False
        self.breaker_reason: str | None = None
        self._operator_override = False
        self.failovers_started = 0
        self.breaker_trips = 0  # times the breaker opened

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> HealthManager:
        self.listener.start()
        self._threads = [threading.Thread(target=self._writer, name="health-writer",
                                          daemon=True),
                         threading.Thread(target=self._checker, name="health-checker",
                                          daemon=True)]
        for thread in self._threads:
            thread.start()
        LOG.info("health manager listening on %s, stale after %.1f s", self.listener.bound,
                 self.settings.stale_after)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.listener.stop()
        for thread in self._threads:
            thread.join(5)

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.bound[0]

    # -- heartbeats into the store -----------------------------------------------

    def _collect(self, message: dict[str, Any], _source: str) -> None:
        self.received += 1
        with self._lock:
            older = self._pending.setdefault(message["id"], message)
            if older is not message:
                self._pending[message["id"]] = _carry_increments(older, message)
                self.superseded += 1
            backlog = len(self._pending)
            full = backlog >= self.settings.batch_size
            self.backlog_peak = max(self.backlog_peak, backlog)
        if full:
            self._wake.set()

    def _writer(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write what has arrived, one transaction per batch; returns messages stored."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        items = list(pending.items())
        size = self.settings.batch_size
        for start in range(0, len(items), size):
            batch = dict(items[start:start + size])
            try:
                with self.sessions.begin() as session:
                    stats = self.writer.write(session, batch, models.utcnow())
            except Exception:
                LOG.exception("storing %d heartbeats failed", len(batch))
                self.writer.forget()  # its cache may hold statuses never stored
                self.failed_batches += 1
                continue
            self.statistics.publish(stats)
            self.stored += len(batch)
            self.batches += 1
        return len(items)

    # -- stale amphorae ---------------------------------------------------------------

    def _checker(self) -> None:
        interval = self.settings.check_interval or self.settings.heartbeat_interval / 2
        while not self._stop.wait(interval):
            try:
                self.check()
            except Exception:
                LOG.exception("stale amphora check failed")
            try:
                self.forget_deleted()
            except Exception:
                LOG.exception("pruning the statistics drivers failed")

    def forget_deleted(self) -> int:
        """Let the statistics drivers drop amphorae and listeners the store no
        longer has (a failover's old amphora, a deleted LB), wherever they went."""
        with self.sessions() as session:
            return self.statistics.prune(session)

    @property
    def silent_after(self) -> float:
        """Seconds without a heartbeat after which an amphora counts as silent for
        the breaker: amphorae cut off at the same moment go stale up to one
        interval apart, and by the time the first is stale the others have
        been silent this long, so the breaker sees them all at the first check."""
        s = self.settings
        check = s.check_interval or s.heartbeat_interval / 2
        return max(1.5 * s.heartbeat_interval, s.stale_after - s.heartbeat_interval - check)

    def check(self) -> list[str]:
        """One pass: the stale amphorae failed over (empty while the breaker is open)."""
        now = models.utcnow()
        cutoff = now - datetime.timedelta(seconds=self.settings.stale_after)
        quiet = now - datetime.timedelta(seconds=self.silent_after)
        with self.sessions.begin() as session:
            session.execute(delete(models.AmphoraHealth).where(
                models.AmphoraHealth.amphora_id.not_in(select(models.Amphora.id))))
            rows = session.execute(
                select(models.Amphora.id, models.Amphora.load_balancer_id,
                       models.AmphoraHealth.last_update)
                .join(models.AmphoraHealth, models.AmphoraHealth.amphora_id == models.Amphora.id)
                .join(models.LoadBalancer,
                      models.LoadBalancer.id == models.Amphora.load_balancer_id)
                # an LB being deleted silences its own amphorae: not a fault
                .where(models.Amphora.status == AMPHORA_ALLOCATED,
                       models.LoadBalancer.provisioning_status != PENDING_DELETE)).all()
            busy = set(session.scalars(select(models.Flow.load_balancer_id).where(
                models.Flow.state.in_([FLOW_PENDING, FLOW_RUNNING]))))
        stale = [(amp, lb) for amp, lb, seen in rows if seen < cutoff]
        silent = sum(1 for *_, seen in rows if seen < quiet)
        share = silent / len(rows) if rows else 0.0
        tripped = (share > self.settings.breaker_threshold
                   and silent >= self.settings.breaker_min_stale)
        if tripped and not self._operator_override:
            if not self.breaker_open:
                self.breaker_trips += 1
                LOG.error("circuit breaker open: %d of %d amphorae (%.0f%%) silent at once, "
                          "above %.0f%%: no failover until heartbeats return or an operator "
                          "resets it", silent, len(rows), 100 * share,
                          100 * self.settings.breaker_threshold)
            self.breaker_open = True
            self.breaker_reason = (f"{silent} of {len(rows)} amphorae silent "
                                   f"({100 * share:.0f}% > "
                                   f"{100 * self.settings.breaker_threshold:.0f}%)")
            return []
        if self.breaker_open and not tripped:
            LOG.warning("circuit breaker closed: %d of %d amphorae silent", silent, len(rows))
            self.breaker_open, self.breaker_reason = False, None
        if not tripped:
            self._operator_override = False
        if not self.settings.failover:
            return []
        started = []
        for amphora_id, lb_id in stale:
            if lb_id is None or lb_id in busy:
                continue
            if self._start_failover(lb_id, amphora_id):
                LOG.warning("amphora %s of LB %s stale (no heartbeat for %.1f s): failover",
                            amphora_id, lb_id, self.settings.stale_after)
                busy.add(lb_id)
                started.append(amphora_id)
                self.failovers_started += 1
        return started

    def reset_breaker(self) -> None:
        """Operator: fail over the stale amphorae even though many are stale at once."""
        LOG.warning("circuit breaker reset by the operator")
        self._operator_override = True
        self.breaker_open, self.breaker_reason = False, None

    def status(self) -> dict[str, Any]:
        """The breaker, counters and the listener's counters (drops included)."""
        try:
            address: list[Any] | None = list(self.listener.bound[0])
        except (OSError, IndexError):  # not started, or stopped
            address = None
        listener = self.listener.counters()
        with self._lock:
            backlog = len(self._pending)
        return {"breaker_open": self.breaker_open, "breaker_reason": self.breaker_reason,
                "received": self.received, "stored": self.stored, "batches": self.batches,
                "superseded": self.superseded, "queue_full": listener["queue_full"],
                "receive_buffer_drops": self.listener.kernel_drops(),
                "failed_batches": self.failed_batches, "backlog": backlog,
                "backlog_peak": self.backlog_peak,
                "status_updates": self.writer.status_updates,
                "failovers_started": self.failovers_started,
                "breaker_trips": self.breaker_trips,
                "listener": listener, "address": address}

