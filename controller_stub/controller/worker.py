"""Workers: claim flows through leases in the database and run them.

Claiming: pick the oldest flow that is PENDING or RUNNING with no live lease
(on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED``, so controllers never
queue behind each other), then take it with a compare-and-swap on
``lease_version`` (the only mechanism on SQLite, and a second guard on
PostgreSQL). A lease lasts ``lease_seconds`` and is renewed by a heartbeat
thread every third of that; a controller that dies stops renewing, and after
expiry any other controller takes the flow over and re-runs its current step.
At start a controller releases the leases held under its own id (it was
restarted), so its work resumes at once.
"""

from __future__ import annotations

import datetime
import logging
import threading
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from controller_stub.controller import models
from controller_stub.controller.certificates import CertificateSource
from controller_stub.controller.compute import ComputeDriver
from controller_stub.controller.constants import FLOW_PENDING, FLOW_RUNNING
from controller_stub.controller.flows import Budget, FlowRunner, LeaseLost

LOG = logging.getLogger(__name__)


class Workers:
    """``count`` threads running flows, plus the lease heartbeat."""

    def __init__(self, sessions: sessionmaker[Session], compute: ComputeDriver, *,
                 owner: str, budget: Budget | None = None, count: int = 2,
                 lease_seconds: float = 10.0, poll_seconds: float = 0.5,
                 certificates: CertificateSource | None = None,
                 keep_failed_amphorae: bool = False, connection_logging: bool = True) -> None:
        self.sessions, self.owner = sessions, owner
        self.runner = FlowRunner(sessions, compute, budget or Budget(), owner, certificates,
                                 keep_failed_amphorae, connection_logging)
        self.count, self.lease_seconds, self.poll_seconds = count, lease_seconds, poll_seconds
        self.stopping = threading.Event()
        self.wakeup = threading.Event()
        self._held: dict[str, int] = {}  # flow id -> lease version
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        dialect = sessions.kw["bind"].dialect.name
        self.skip_locked = dialect == "postgresql"

    # -- leases -----------------------------------------------------------------

    def _expiry(self) -> datetime.datetime:
        return models.utcnow() + datetime.timedelta(seconds=self.lease_seconds)

    def release_own(self) -> int:
        """Leases still held under our id are from before a restart: free them."""
        with self.sessions.begin() as session:
            return session.execute(update(models.Flow).where(
                models.Flow.owner == self.owner,
                models.Flow.state.in_([FLOW_PENDING, FLOW_RUNNING])).values(
                lease_expires=None, owner=None)).rowcount

    def claim(self) -> tuple[str, int] | None:
        now = models.utcnow()
        with self.sessions.begin() as session:
            query = select(models.Flow.id, models.Flow.lease_version).where(
                models.Flow.state.in_([FLOW_PENDING, FLOW_RUNNING]),
                or_(models.Flow.lease_expires.is_(None), models.Flow.lease_expires < now),
            ).order_by(models.Flow.created_at).limit(1)
            if self.skip_locked:
                query = query.with_for_update(skip_locked=True)
            row = session.execute(query).first()
            if row is None:
                return None
            flow_id, version = row
            taken = session.execute(update(models.Flow).where(
                models.Flow.id == flow_id, models.Flow.lease_version == version).values(
                owner=self.owner, lease_expires=self._expiry(), lease_version=version + 1,
                state=FLOW_RUNNING)).rowcount
        if taken != 1:
            return None
        return flow_id, version + 1

    def renew(self) -> None:
        with self._lock:
            held = dict(self._held)
        for flow_id, version in held.items():
            with self.sessions.begin() as session:
                ok = session.execute(update(models.Flow).where(
                    models.Flow.id == flow_id, models.Flow.lease_version == version,
                    models.Flow.owner == self.owner).values(
                    lease_expires=self._expiry())).rowcount == 1
            if not ok:
                with self._lock:
                    self._lost.add(flow_id)

    # -- loops --------------------------------------------------------------------

    def run_one(self) -> bool:
        """Claim and run one flow; False if there was none."""
        claimed = self.claim()
        if claimed is None:
            return False
        flow_id, version = claimed
        with self._lock:
            self._held[flow_id] = version

        def lease_ok() -> bool:
            # Shutting down also ends the flow at the next step boundary (resumable).
            with self._lock:
                return flow_id not in self._lost and not self.stopping.is_set()

        try:
            state = self.runner.run(flow_id, version, lease_ok)
            LOG.info("flow %s: %s", flow_id, state)
        except LeaseLost:
            LOG.warning("flow %s: lease lost, another controller has it", flow_id)
        except Exception:
            # Unexpected (database down...): the lease expires and the flow is retried.
            LOG.exception("flow %s: worker error", flow_id)
        finally:
            with self._lock:
                self._held.pop(flow_id, None)
                self._lost.discard(flow_id)
        return True

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                if self.run_one():
                    continue
            except Exception:
                LOG.exception("claiming work failed")
            self.wakeup.wait(self.poll_seconds)
            self.wakeup.clear()

    def _heartbeat(self) -> None:
        while not self.stopping.wait(self.lease_seconds / 3):
            try:
                self.renew()
            except Exception:
                LOG.exception("lease renewal failed")

    def start(self) -> None:
        self.release_own()
        targets: list[Any] = [self._heartbeat] + [self._work] * self.count
        for i, target in enumerate(targets):
            thread = threading.Thread(target=target, name=f"controller-worker-{i}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; in-flight steps finish (or stay resumable after ``timeout``)."""
        self.stopping.set()
        self.wakeup.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
