"""Heartbeats into the state store without the ORM's object loading.

Each batch costs a few statements whatever its size: last-seen times as an
upsert, one query that maps the amphorae to their LBs, UPDATEs only for the
operating statuses that change, and the listener statistics handed to the
statistics drivers' part of the transaction (the ``state_store`` driver's
upsert). The statuses are computed in Python against a cache of each LB's
tree (ids, ``admin_state_up``, provisioning and operating statuses). A tree
is reloaded when its LB row differs from the cached one (every change to an
LB or its children moves the LB through ``PENDING_UPDATE``, so its
``updated_at`` and status change, also when another controller made the
change), after ``TREE_SECONDS``, and after a failed transaction.

Status UPDATEs are ORM statements run through the session (``update(Model)
.where(...)``), so the notification hooks see the rows they change; each
also carries ``operating_status != new`` and ``provisioning_status =
ACTIVE``, so a stale cache never writes over a flow's change.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from controller_stub.controller import models
from controller_stub.controller.constants import (
    ACTIVE,
    DEGRADED,
    ERROR,
    NO_MONITOR,
    OFFLINE,
    ONLINE,
)
from controller_stub.controller.statistics import ListenerStats, StateStoreStats, StatsPublisher

MEMBER_STATUS = {"UP": ONLINE, "DOWN": ERROR, "DRAIN": "DRAINING", "MAINT": OFFLINE,
                 "no check": NO_MONITOR}
POOL_STATUS = {"UP": ONLINE, "DOWN": ERROR, "MAINT": OFFLINE}
LISTENER_STATUS = {"OPEN": ONLINE, "FULL": DEGRADED, "DOWN": ERROR, "STOP": OFFLINE}
TREE_SECONDS = 30.0  # a cached tree is reloaded at least this often

_HEALTH = models.AmphoraHealth.__table__
_AMP = models.Amphora.__table__
_LB = models.LoadBalancer.__table__
_LISTENER = models.Listener.__table__
_POOL = models.Pool.__table__
_MEMBER = models.Member.__table__


@dataclass(slots=True)
class _Node:
    """One listener, pool or member: what the status mapping needs."""

    admin_state_up: bool
    active: bool          # provisioning_status ACTIVE
    operating_status: str


@dataclass(slots=True)
class _Pool:
    node: _Node
    members: dict[str, _Node] = field(default_factory=dict)


@dataclass(slots=True)
class _Tree:
    key: tuple[Any, ...]  # the LB row's (provisioning_status, admin_state_up, updated_at)
    loaded: float
    operating_status: str
    listeners: dict[str, _Node] = field(default_factory=dict)
    pools: dict[str, _Pool] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.key[0] == ACTIVE)

    @property
    def admin_state_up(self) -> bool:
        return bool(self.key[1])


def _worst(statuses: Iterable[str]) -> str:
    statuses = list(statuses)
    if not statuses or all(s in (ONLINE, NO_MONITOR, OFFLINE, "DRAINING") for s in statuses):
        return ONLINE
    if all(s == ERROR for s in statuses):
        return ERROR
    return DEGRADED


def _among(column: Any, ids: list[str], dialect: str) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL ``= ANY(:ids)``, one array parameter."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", ids, type_=postgresql.ARRAY(String)))
    return column.in_(ids)  # type: ignore[no-any-return]


class StatusWriter:
    """Writes batches of heartbeats; keeps the LB trees between batches."""

    def __init__(self, *, tree_seconds: float = TREE_SECONDS,
                 statistics: StatsPublisher | None = None) -> None:
        self.tree_seconds = tree_seconds
        # default: the state store alone, as ``[statistics] drivers`` defaults to
        self.statistics = (StatsPublisher([StateStoreStats()]) if statistics is None
                           else statistics)
        self._trees: dict[str, _Tree] = {}
        self._pruned = time.monotonic()
        self.tree_loads = 0  # LB trees loaded from the store (cache misses)
        self.status_updates = 0  # rows whose operating status was changed

    @property
    def cached_lbs(self) -> set[str]:
        return set(self._trees)

    def forget(self, lb_id: str | None = None) -> None:
        """Drop one LB's cached tree (all of them with no id): after a failed
        transaction the cache may hold statuses that were never stored."""
        if lb_id is None:
            self._trees.clear()
        else:
            self._trees.pop(lb_id, None)

    def write(self, session: Session, messages: dict[str, dict[str, Any]],
              now: datetime.datetime) -> list[ListenerStats]:
        """One batch (amphora id → newest message) in the caller's transaction;
        returns its listener statistics for the drivers to publish once committed
        (only listeners of the amphora's own LB, of amphorae the store knows)."""
        if not messages:
            return []
        conn = session.connection()
        dialect = conn.dialect.name
        ids = list(messages)
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        health = insert(_HEALTH)
        conn.execute(health.on_conflict_do_update(
            index_elements=[_HEALTH.c.amphora_id],
            set_={"last_update": health.excluded.last_update}),
            [{"amphora_id": i, "last_update": now} for i in ids])
        rows = conn.execute(
            select(_AMP.c.id, _LB.c.id, _LB.c.provisioning_status, _LB.c.admin_state_up,
                   _LB.c.updated_at)
            .join(_LB, _LB.c.id == _AMP.c.load_balancer_id)
            .where(_among(_AMP.c.id, ids, dialect))).all()
        lb_of = {amp: lb for amp, lb, *_ in rows}
        keys = {lb: tuple(key) for _amp, lb, *key in rows}
        self._load(conn, dialect, keys)
        changes: dict[tuple[type[Any], str], str] = {}  # (model, id) → its newest status
        stats: list[ListenerStats] = []
        for amphora_id, message in messages.items():
            lb_id = lb_of.get(amphora_id)
            if lb_id is None:
                continue  # an amphora we do not know (any more): last-seen only
            tree = self._trees.get(lb_id)
            if tree is None:
                continue  # its LB went between two statements (PostgreSQL, read committed)
            if tree.active:
                self._statuses(lb_id, tree, message, changes)
            for listener_id, listener in message["listeners"].items():
                if listener_id not in tree.listeners:
                    continue  # an amphora reports only its own LB's listeners
                s = listener["stats"]
                stats.append(ListenerStats(amphora_id, listener_id, s["conns"], s["rx"],
                                           s["tx"], s["ereq"], s["totconns"]))
        grouped: dict[tuple[type[Any], str], list[str]] = {}
        for (model, object_id), status in changes.items():
            grouped.setdefault((model, status), []).append(object_id)
        for (model, status), object_ids in grouped.items():
            self._update(session, model, status, object_ids, now, dialect)
        self.statistics.store(session, stats)
        return stats

    # -- the cache ------------------------------------------------------------------

    def _load(self, conn: Any, dialect: str, keys: dict[str, tuple[Any, ...]]) -> None:
        """(Re)load the trees of the LBs whose row changed or whose tree is old."""
        clock = time.monotonic()
        if clock - self._pruned > self.tree_seconds:
            # trees of LBs that no longer send (deleted) are not kept forever
            self._pruned = clock
            for lb in [lb for lb, tree in self._trees.items()
                       if clock - tree.loaded > 2 * self.tree_seconds]:
                del self._trees[lb]
        stale = [lb for lb, key in keys.items()
                 if (tree := self._trees.get(lb)) is None or tree.key != key
                 or clock - tree.loaded > self.tree_seconds]
        if not stale:
            return
        lbs = conn.execute(select(_LB.c.id, _LB.c.operating_status).where(
            _among(_LB.c.id, stale, dialect))).all()
        trees = {lb: _Tree(keys[lb], clock, status) for lb, status in lbs}
        for row in conn.execute(select(
                _LISTENER.c.id, _LISTENER.c.load_balancer_id, _LISTENER.c.admin_state_up,
                _LISTENER.c.provisioning_status, _LISTENER.c.operating_status).where(
                _among(_LISTENER.c.load_balancer_id, stale, dialect))):
            if row[1] in trees:
                trees[row[1]].listeners[row[0]] = _Node(bool(row[2]), row[3] == ACTIVE, row[4])
        pools: dict[str, _Pool] = {}
        for row in conn.execute(select(
                _POOL.c.id, _POOL.c.load_balancer_id, _POOL.c.admin_state_up,
                _POOL.c.provisioning_status, _POOL.c.operating_status).where(
                _among(_POOL.c.load_balancer_id, stale, dialect))):
            if row[1] in trees:
                pools[row[0]] = trees[row[1]].pools[row[0]] = _Pool(
                    _Node(bool(row[2]), row[3] == ACTIVE, row[4]))
        for row in conn.execute(select(
                _MEMBER.c.id, _MEMBER.c.pool_id, _MEMBER.c.admin_state_up,
                _MEMBER.c.provisioning_status, _MEMBER.c.operating_status)
                .join(_POOL, _POOL.c.id == _MEMBER.c.pool_id)
                .where(_among(_POOL.c.load_balancer_id, stale, dialect))):
            if row[1] in pools:
                pools[row[1]].members[row[0]] = _Node(bool(row[2]), row[3] == ACTIVE, row[4])
        self._trees.update(trees)
        self.tree_loads += len(trees)

    # -- Octavia's update_db ------------------------------------------------------------

    @staticmethod
    def _set(node: _Node | _Tree, status: str, model: type[Any], object_id: str,
             changes: dict[tuple[type[Any], str], str]) -> None:
        # two amphorae of a pair in one batch: the later message wins, as in the cache
        if node.operating_status != status:
            node.operating_status = status
            changes[(model, object_id)] = status

    def _statuses(self, lb_id: str, tree: _Tree, message: dict[str, Any],
                  changes: dict[tuple[type[Any], str], str]) -> None:
        """Statuses of what the message names, as Octavia's update_db sets them."""
        reported_listeners = message["listeners"]
        pools_seen: dict[str, dict[str, Any]] = dict(message["pools"])
        for listener in reported_listeners.values():
            pools_seen.update(listener.get("pools", {}))
        # pool keys are "<pool id>" or "<pool id>:<listener id>" (one backend per listener)
        by_pool: dict[str, dict[str, Any]] = {}
        for key, pool in pools_seen.items():
            by_pool.setdefault(key.split(":")[0], pool)
        statuses = []
        for listener_id, node in tree.listeners.items():
            reported = reported_listeners.get(listener_id)
            if node.active and reported is not None:
                self._set(node, LISTENER_STATUS[reported["status"]] if node.admin_state_up
                          else OFFLINE, models.Listener, listener_id, changes)
            statuses.append(node.operating_status)
        for pool_id, pool in tree.pools.items():
            reported = by_pool.get(pool_id)
            if reported is None or not pool.node.active:
                continue
            members = reported["members"]
            for member_id, member in pool.members.items():
                status = members.get(member_id)
                if status is not None and member.active:
                    self._set(member, MEMBER_STATUS[status] if member.admin_state_up
                              else OFFLINE, models.Member, member_id, changes)
            pool_status = POOL_STATUS[reported["status"]]
            if pool_status == ONLINE:
                pool_status = _worst(m.operating_status for m in pool.members.values()
                                     if m.operating_status != NO_MONITOR)
            self._set(pool.node, pool_status, models.Pool, pool_id, changes)
            statuses.append(pool_status)
        if tree.admin_state_up:
            self._set(tree, _worst(statuses), models.LoadBalancer, lb_id, changes)

    def _update(self, session: Session, model: type[Any], status: str, ids: list[str],
                now: datetime.datetime, dialect: str) -> None:
        """One ORM UPDATE for every object of ``model`` going to ``status``."""
        values: dict[str, Any] = {"operating_status": status}
        if model is models.LoadBalancer:
            values["updated_at"] = now  # known, so the cached key stays valid
            for lb_id in ids:
                tree = self._trees[lb_id]
                tree.key = (*tree.key[:2], now)
        result = session.execute(
            update(model).where(_among(model.id, ids, dialect),
                                model.operating_status != status,
                                model.provisioning_status == ACTIVE)
            .values(**values).execution_options(synchronize_session=False))
        self.status_updates += result.rowcount  # type: ignore[attr-defined]


def store_batch(session: Session, messages: dict[str, dict[str, Any]],
                now: datetime.datetime) -> list[ListenerStats]:
    """One batch with an empty cache (every tree loaded from the store), its
    statistics into the state store."""
    return StatusWriter().write(session, messages, now)
