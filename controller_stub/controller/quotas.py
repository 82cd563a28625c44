"""Per-project quotas, as Octavia's: limits per object kind, ``-1`` unlimited.

A project without its own row uses the configured defaults; a row's NULL
column also means the default. Enforcement counts the project's objects in
the same transaction as the change (before and after it), so a change that
adds objects of a kind already at its limit fails with :class:`QuotaExceeded`
and stores nothing, while changes that add none of that kind still pass when
an operator lowered a limit below what is in use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller_stub.controller import models
from controller_stub.controller.errors import InvalidRequest, QuotaExceeded

UNLIMITED = -1
MAX_QUOTA = 2_000_000_000
# column -> Octavia's API field and the resource name in its 403 message
KINDS: dict[str, tuple[str, str]] = {
    "load_balancer": ("loadbalancer", "Load Balancer"),
    "listener": ("listener", "Listener"),
    "pool": ("pool", "Pool"),
    "health_monitor": ("healthmonitor", "Health Monitor"),
    "member": ("member", "Member"),
    "l7policy": ("l7policy", "L7 Policy"),
    "l7rule": ("l7rule", "L7 Rule"),
}
# the API's deprecated spellings, accepted on PUT and shown in answers as Octavia does
_ALIASES = {"load_balancer": "load_balancer", "health_monitor": "health_monitor"}
DEFAULTS: dict[str, int] = dict.fromkeys(KINDS, UNLIMITED)


def validate_limits(values: Mapping[str, Any]) -> dict[str, int | None]:
    """API field names (``loadbalancer``, ``healthmonitor`` or the deprecated
    ``load_balancer``/``health_monitor``...) to columns; None keeps the default."""
    by_field = {field: column for column, (field, _name) in KINDS.items()}
    by_field.update(_ALIASES)
    out: dict[str, int | None] = {}
    for key, value in values.items():
        if key not in by_field:
            raise InvalidRequest(f"quota: unknown attribute {key}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not UNLIMITED <= value <= MAX_QUOTA):
            raise InvalidRequest(f"quota: {key} must be an integer {UNLIMITED}..{MAX_QUOTA}")
        out[by_field[key]] = value
    return out


def as_api(project_id: str | None, limits: Mapping[str, int]) -> dict[str, Any]:
    """Octavia's quota body, both spellings of the renamed fields included."""
    out: dict[str, Any] = {} if project_id is None else {"project_id": project_id}
    for column, (field, _name) in KINDS.items():
        out[field] = limits[column]
        if column in _ALIASES:
            out[column] = limits[column]
    return out


def limits(session: Session, project_id: str, defaults: Mapping[str, int]) -> dict[str, int]:
    row = session.get(models.Quota, project_id)
    return {kind: (getattr(row, kind) if row is not None and getattr(row, kind) is not None
                   else defaults[kind]) for kind in KINDS}


def get(sessions: sessionmaker[Session], project_id: str,
        defaults: Mapping[str, int]) -> dict[str, Any]:
    with sessions() as session:
        return as_api(project_id, limits(session, project_id, defaults))


def list_custom(sessions: sessionmaker[Session], defaults: Mapping[str, int],
                project_id: str | None = None) -> list[dict[str, Any]]:
    """The projects with a row of their own (Octavia lists only non-default quotas)."""
    with sessions() as session:
        query = select(models.Quota.project_id).order_by(models.Quota.project_id)
        if project_id is not None:
            query = query.where(models.Quota.project_id == project_id)
        return [as_api(pid, limits(session, pid, defaults)) for pid in session.scalars(query)]


def update(sessions: sessionmaker[Session], project_id: str, values: Mapping[str, Any],
           defaults: Mapping[str, int]) -> dict[str, Any]:
    columns = validate_limits(values)
    with sessions.begin() as session:
        row = session.get(models.Quota, project_id)
        if row is None:
            row = models.Quota(project_id=project_id)
            session.add(row)
        for column, value in columns.items():
            setattr(row, column, value)
        session.flush()
        return as_api(project_id, limits(session, project_id, defaults))


def reset(sessions: sessionmaker[Session], project_id: str) -> None:
    with sessions.begin() as session:
        row = session.get(models.Quota, project_id)
        if row is not None:
            session.delete(row)


def usage(session: Session, project_id: str) -> dict[str, int]:
    """Objects of each kind under the project's load balancers (pending deletes count
    until they are gone, as in Octavia)."""
    lb, listener, pool = models.LoadBalancer, models.Listener, models.Pool
    member, monitor = models.Member, models.HealthMonitor
    policy, rule = models.L7Policy, models.L7Rule
    mine = lb.project_id == project_id

    def count(query: Any) -> int:
        return int(session.scalar(query) or 0)
    return {
        "load_balancer": count(select(func.count()).select_from(lb).where(mine)),
        "listener": count(select(func.count(listener.id)).join(lb).where(mine)),
        "pool": count(select(func.count(pool.id)).join(lb).where(mine)),
        "health_monitor": count(select(func.count(monitor.id)).join(pool).join(lb)
                                .where(mine)),
        "member": count(select(func.count(member.id)).join(pool).join(lb).where(mine)),
        "l7policy": count(select(func.count(policy.id)).join(listener).join(lb)
                          .where(mine)),
        "l7rule": count(select(func.count(rule.id)).join(policy).join(listener).join(lb)
                        .where(mine)),
    }


def lock(session: Session, project_id: str) -> None:
    """Hold the project's quota row until the transaction ends (created, with the
    defaults, if missing), so concurrent changes of one project count one at a time
    on PostgreSQL too (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    query = select(models.Quota).where(models.Quota.project_id == project_id) \
        .with_for_update()
    if session.scalars(query).first() is not None:
        return
    try:
        with session.begin_nested():
            session.add(models.Quota(project_id=project_id))
    except IntegrityError:  # another transaction created it first: wait for its lock
        pass
    session.scalars(query).first()


class Enforcer:
    """Counts a project's objects around one change; ``check`` raises when the
    change added objects of a kind past its limit."""

    def __init__(self, session: Session, project_id: str | None,
                 defaults: Mapping[str, int]) -> None:
        self.session, self.project_id = session, project_id
        self.limits = limits(session, project_id, defaults) if project_id else {}
        self.active = any(v != UNLIMITED for v in self.limits.values())
        if self.active and project_id:
            lock(session, project_id)
        self.before = usage(session, project_id) if self.active and project_id else {}

    def check(self) -> None:
        if not self.active or self.project_id is None:
            return
        self.session.flush()
        after = usage(self.session, self.project_id)
        for kind, (_field, name) in KINDS.items():
            limit = self.limits[kind]
            if (limit != UNLIMITED and after[kind] > self.before.get(kind, 0)
                    and after[kind] > limit):
                raise QuotaExceeded(f"Quota has been met for resources: {name}")
