"""Housekeeping: the periodic work no flow owns.

Every ``[housekeeping] interval`` the daemon runs :meth:`Housekeeper.run_once`:

- amphora server certificates that expire within ``cert_rotate_before`` are
  replaced through the agent's validated rotation (``PUT /1.0/certificate``)
  and the new expiry recorded on the amphora row;
- amphorae whose load balancer is gone (no LB, or the LB is ``DELETED``) are
  removed with their compute, and on a fabric whose driver can list its
  instances, amphora instances no row owns are removed too;
- finished flows older than ``flow_retention``, rows in ``DELETED`` older than
  ``deleted_retention``, and heartbeat and statistics rows of amphorae and
  listeners no longer stored are purged.

Each part is bounded by the step budget (one agent attempt of
``agent_timeout`` per amphora, ``[budget] seconds`` per part and run); what
fails or does not fit is logged and retried on the next run. Housekeeping
takes no lease and never touches an LB a flow is working on (``PENDING_*``),
so it never blocks or races a flow's steps.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from controller_stub.controller import models
from controller_stub.controller.compute import CERT_VALIDITY, ComputeDriver
from controller_stub.controller.constants import (
    ACTIVE,
    AMPHORA_ALLOCATED,
    DELETED,
    ERROR,
    FLOW_DONE,
    FLOW_FAILED,
)
from controller_stub.controller.flows import Budget, _reason

LOG = logging.getLogger("amphora-controller.housekeeping")
_ROTATION_REASON = "certificate rotation: "


@dataclass(frozen=True)
class HousekeepingSettings:
    interval: float = 60.0
    flow_retention: float = 3600.0
    deleted_retention: float = 7 * 86400.0
    cert_rotate_before: float = 14 * 86400.0
    cert_validity: float = CERT_VALIDITY
    orphans: bool = True


@dataclass
class Report:
    """What one run did; ``failed`` maps an amphora id to the reason."""

    rotated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    deferred: int = 0
    orphans: list[str] = field(default_factory=list)
    purged: dict[str, int] = field(default_factory=dict)


def _cutoff(seconds: float) -> datetime.datetime:
    return models.utcnow() - datetime.timedelta(seconds=seconds)


def purge_flows(sessions: sessionmaker[Session], older_than: float) -> int:
    """Delete finished flows (and their steps) older than ``older_than`` seconds."""
    with sessions.begin() as session:
        old = select(models.Flow.id).where(models.Flow.state.in_([FLOW_DONE, FLOW_FAILED]),
                                           models.Flow.updated_at < _cutoff(older_than))
        ids = list(session.scalars(old))
        if ids:
            session.execute(delete(models.FlowStep).where(models.FlowStep.flow_id.in_(ids)))
            session.execute(delete(models.Flow).where(models.Flow.id.in_(ids)))
        return len(ids)


def purge_deleted(sessions: sessionmaker[Session], older_than: float) -> dict[str, int]:
    """Rows in ``DELETED`` older than ``older_than`` seconds (an LB with everything
    below it, once no amphora row refers to it), and heartbeat and statistics
    rows whose amphora or listener is no longer stored."""
    cutoff = _cutoff(older_than)
    counts = {}
    with sessions.begin() as session:
        changed = func.coalesce(models.Amphora.updated_at, models.Amphora.created_at)
        counts["amphora"] = session.execute(delete(models.Amphora).where(
            models.Amphora.status == DELETED, changed < cutoff)).rowcount
        lb_changed = func.coalesce(models.LoadBalancer.updated_at,
                                   models.LoadBalancer.created_at)
        lbs = list(session.scalars(select(models.LoadBalancer).where(
            models.LoadBalancer.provisioning_status == DELETED, lb_changed < cutoff,
            ~select(models.Amphora.id).where(
                models.Amphora.load_balancer_id == models.LoadBalancer.id).exists())))
        for lb in lbs:  # pools go last: nothing may still refer to one
            for listener in lb.listeners:
                listener.default_pool_id = None
                for policy in listener.l7policies:
                    policy.redirect_pool_id = None
        session.flush()
        for lb in lbs:
            session.delete(lb)  # listeners, pools, members, monitors, L7 cascade
        counts["load_balancer"] = len(lbs)
        session.flush()
        counts["amphora_health"] = session.execute(delete(models.AmphoraHealth).where(
            models.AmphoraHealth.amphora_id.not_in(select(models.Amphora.id)))).rowcount
        counts["listener_statistics"] = session.execute(
            delete(models.ListenerStatistics).where(or_(
                models.ListenerStatistics.amphora_id.not_in(select(models.Amphora.id)),
                models.ListenerStatistics.listener_id.not_in(select(models.Listener.id)))
            )).rowcount
    return {table: n for table, n in counts.items() if n}


def rotate_certificates(sessions: sessionmaker[Session], compute: ComputeDriver, *,
                        before: float, budget: Budget, report: Report | None = None) -> Report:
    """Rotate the server certificate of every serving amphora (its LB ``ACTIVE`` or
    ``ERROR``, not being changed) that expires within ``before`` seconds or whose
    expiry is not recorded; soonest first, within ``budget.seconds``."""
    report = report or Report()
    due = models.utcnow() + datetime.timedelta(seconds=before)
    with sessions() as session:
        rows = session.execute(
            select(models.Amphora.id, models.Amphora.compute_data)
            .join(models.LoadBalancer, models.Amphora.load_balancer_id == models.LoadBalancer.id)
            .where(models.Amphora.status == AMPHORA_ALLOCATED,
                   models.LoadBalancer.provisioning_status.in_([ACTIVE, ERROR]),
                   or_(models.Amphora.cert_expiration.is_(None),
                       models.Amphora.cert_expiration < due))
            .order_by(models.Amphora.cert_expiration.is_not(None),
                      models.Amphora.cert_expiration)).all()
    deadline = time.monotonic() + budget.seconds
    for index, (amphora_id, data) in enumerate(rows):
        if time.monotonic() >= deadline:
            report.deferred += len(rows) - index
            LOG.info("certificate rotation: %d amphorae left for the next run",
                     len(rows) - index)
            break
        try:
            issued = compute.amphora_certificate(amphora_id)
            with compute.client(amphora_id, dict(data), retries=0, retry_interval=0.05,
                                timeout=budget.agent_timeout) as client:
                client.rotate_certificate(issued.pem)
        except Exception as exc:
            reason = _reason(exc)
            report.failed[amphora_id] = reason
            LOG.warning("certificate rotation of amphora %s failed (retried next run): %s",
                        amphora_id, reason)
            _record(sessions, amphora_id, status_reason=_ROTATION_REASON + reason)
            continue
        expires = issued.cert.not_valid_after_utc.replace(tzinfo=None)
        _record(sessions, amphora_id, cert_expiration=expires, status_reason=None)
        report.rotated.append(amphora_id)
        LOG.info("certificate of amphora %s rotated, valid until %s", amphora_id,
                 expires.isoformat())
    return report


def _record(sessions: sessionmaker[Session], amphora_id: str, **values: Any) -> None:
    """Update the amphora row if it still exists (a flow may have replaced it)."""
    with sessions.begin() as session:
        query = update(models.Amphora).where(models.Amphora.id == amphora_id)
        if values.get("status_reason") is None:  # clear only a rotation's own reason
            query = query.where(or_(models.Amphora.status_reason.is_(None),
                                    models.Amphora.status_reason.startswith(
                                        _ROTATION_REASON)))
        session.execute(query.values(**values))


def clean_orphans(sessions: sessionmaker[Session], compute: ComputeDriver, *,
                  budget: Budget, report: Report | None = None) -> Report:
    """Remove amphorae no load balancer owns: rows without an LB (or whose LB is
    ``DELETED``) with their compute, then, if the driver lists its instances
    (``instances()`` keyed by ``instance_key(amphora_id)``, ``delete_instance(key)``),
    instances no amphora row names.
    Instances are listed before rows are read, so an amphora booting meanwhile
    (its row is committed before its instance exists) is never taken."""
    report = report or Report()
    lister: Callable[[], dict[str, str]] | None = getattr(compute, "instances", None)
    instances = lister() if lister is not None else None
    with sessions() as session:
        rows = session.execute(
            select(models.Amphora.id, models.Amphora.compute_data,
                   models.LoadBalancer.provisioning_status)
            .outerjoin(models.LoadBalancer,
                       models.Amphora.load_balancer_id == models.LoadBalancer.id)).all()
    deadline = time.monotonic() + budget.seconds
    for amphora_id, data, lb_status in rows:
        if lb_status is not None and lb_status != DELETED:
            continue
        if time.monotonic() >= deadline:
            report.deferred += 1
            continue
        try:
            compute.delete(amphora_id, dict(data))
            compute.release(amphora_id)
        except Exception as exc:
            report.failed[amphora_id] = _reason(exc)
            LOG.warning("removing orphaned amphora %s failed (retried next run): %s",
                        amphora_id, _reason(exc))
            continue
        with sessions.begin() as session:
            for model, column in ((models.Amphora, models.Amphora.id),
                                  (models.AmphoraHealth, models.AmphoraHealth.amphora_id),
                                  (models.ListenerStatistics,
                                   models.ListenerStatistics.amphora_id)):
                session.execute(delete(model).where(column == amphora_id))
        report.orphans.append(amphora_id)
        LOG.warning("removed orphaned amphora %s (no load balancer)", amphora_id)
    if instances:
        known = {compute.instance_key(row[0]) for row in rows}  # type: ignore[attr-defined]
        for short, name in sorted(instances.items()):
            if short in known or time.monotonic() >= deadline:
                continue
            try:
                compute.delete_instance(short)  # type: ignore[attr-defined]
            except Exception as exc:
                report.failed[name] = _reason(exc)
                LOG.warning("removing orphaned instance %s failed: %s", name, _reason(exc))
                continue
            report.orphans.append(name)
            LOG.warning("removed orphaned instance %s (no amphora row)", name)
    return report


class Housekeeper:
    """One controller's housekeeping; :meth:`run_once` is what the daemon loop calls."""

    def __init__(self, sessions: sessionmaker[Session], compute: ComputeDriver,
                 settings: HousekeepingSettings, budget: Budget) -> None:
        self.sessions, self.compute = sessions, compute
        self.settings, self.budget = settings, budget

    def run_once(self) -> Report:
        report = Report()
        parts: list[tuple[str, Callable[[], Any]]] = [
            ("certificate rotation", lambda: rotate_certificates(
                self.sessions, self.compute, before=self.settings.cert_rotate_before,
                budget=self.budget, report=report))]
        if self.settings.orphans:
            parts.append(("orphan cleanup", lambda: clean_orphans(
                self.sessions, self.compute, budget=self.budget, report=report)))
        parts += [
            ("flow purge", lambda: report.purged.update(
                {"flow": purge_flows(self.sessions, self.settings.flow_retention)})),
            ("purge", lambda: report.purged.update(
                purge_deleted(self.sessions, self.settings.deleted_retention))),
        ]
        for name, part in parts:
            try:
                part()
            except Exception:
                LOG.exception("housekeeping: %s failed", name)
        purged = {table: n for table, n in report.purged.items() if n}
        if purged:
            LOG.info("housekeeping: purged %s",
                     ", ".join(f"{n} {table}" for table, n in sorted(purged.items())))
        return report
