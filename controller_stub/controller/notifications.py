"""Status-change notifications: every provisioning/operating status change as an event.

Statuses change only through the state store's sessions, so the events come
from there: :func:`install` hooks the session factory, collects status
changes of the user-visible objects at each flush and publishes them after the
transaction commits (a rolled-back change never becomes an event). Each event
carries the whole object in its API shape (the dicts of
:mod:`controller_stub.controller.api`), like Octavia's notifications. Drivers
are loaded side by side from ``[notifications] drivers`` (docs/controller.md):
``log`` and ``webhook``. The webhook driver delivers from a bounded queue in
its own thread, so a flow never waits for a slow receiver; events that do not
fit are dropped and counted.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import queue
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from controller_stub.controller import api, models

LOG = logging.getLogger("amphora-controller.notifications")
SIGNATURE_HEADER = "X-Amphora-Signature"
_DELETED = "DELETED"


def _amphora_dict(a: models.Amphora) -> dict[str, Any]:
    """An amphora as the API lists it, without the compute driver's private data."""
    return {"id": a.id, "loadbalancer_id": a.load_balancer_id, "role": a.role,
            "status": a.status, "status_reason": a.status_reason,
            "lb_network_ip": a.lb_network_ip, "vrrp_ip": a.vrrp_ip, "ha_ip": a.ha_ip,
            "compute_id": a.compute_id, "image_id": a.image_id,
            "availability_zone": a.cached_zone}


_STATUS_FIELDS = ("provisioning_status", "operating_status")
# model -> (object type in the event, its API-shaped dict, its status fields)
_SHAPES: dict[type[Any], tuple[str, Callable[[Any], dict[str, Any]], tuple[str, ...]]] = {
    models.LoadBalancer: ("loadbalancer", api.lb_dict, _STATUS_FIELDS),
    models.Listener: ("listener", api.listener_dict, _STATUS_FIELDS),
    models.Pool: ("pool", api.pool_dict, _STATUS_FIELDS),
    models.Member: ("member", api.member_dict, _STATUS_FIELDS),
    models.HealthMonitor: ("healthmonitor", api.healthmonitor_dict, _STATUS_FIELDS),
    models.L7Policy: ("l7policy", api.l7policy_dict, _STATUS_FIELDS),
    models.L7Rule: ("l7rule", api.l7rule_dict, _STATUS_FIELDS),
    models.Amphora: ("amphora", _amphora_dict, ("status",)),
}


class NotificationDriver(Protocol):
    def publish(self, event: dict[str, Any]) -> None:
        """Hand ``event`` on; must not block for long (flows call it)."""

    def close(self) -> None:
        """Stop background work, delivering what is queued within a short bound."""


def signature(secret: bytes, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of the body, for the receiver to check."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class LogDriver:
    """Each event as one JSON log line."""

    def publish(self, event: dict[str, Any]) -> None:
        LOG.info("event %s", json.dumps(event, sort_keys=True, default=str))

    def close(self) -> None:
        pass


class WebhookDriver:
    """POST each event as JSON, signed, with bounded retries, from a background thread."""

    def __init__(self, url: str, secret: bytes, *, queue_size: int = 1000, retries: int = 3,
                 backoff: float = 0.5, timeout: float = 5.0) -> None:
        self.url, self._secret = url, secret
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_size)
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="notifications-webhook")
        self._thread.start()

    def publish(self, event: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            LOG.warning("webhook queue full: event dropped (%d so far)", self.dropped)

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(  # noqa: S310 - the operator's configured URL
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json",
                     SIGNATURE_HEADER: signature(self._secret, body)})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            response.read()

    def _deliver(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, sort_keys=True, default=str).encode()
        for attempt in range(self.retries + 1):
            try:
                self._post(body)
                self.delivered += 1
                return
            except (OSError, urllib.error.URLError) as exc:
                if attempt == self.retries or self._stopping.wait(self.backoff * 2 ** attempt):
                    self.failed += 1
                    LOG.warning("webhook delivery of %s %s failed after %d attempt(s): %s",
                                event.get("object_type"), event.get("object_id"),
                                attempt + 1, exc)
                    return

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            self._deliver(event)

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            self._stopping.set()
        self._thread.join(timeout)
        self._stopping.set()


@dataclass
class Notifier:
    """Fans each event out to every configured driver; a failing driver never stops a flow."""

    drivers: list[NotificationDriver]

    def publish(self, events: Iterable[dict[str, Any]]) -> None:
        for item in events:
            for driver in self.drivers:
                try:
                    driver.publish(item)
                except Exception:
                    LOG.exception("notification driver %s failed", type(driver).__name__)

    def close(self) -> None:
        for driver in self.drivers:
            driver.close()


def make_driver(name: str, options: dict[str, str]) -> NotificationDriver:
    if name == "log":
        return LogDriver()
    if name == "webhook":
        secret = options.get("webhook_secret", "")
        if not options.get("webhook_url") or not secret:
            raise ValueError("[notifications] webhook needs webhook_url and webhook_secret")
        if not re.fullmatch(r"https?://[^\s]+", options["webhook_url"]):
            raise ValueError("[notifications] webhook_url: an http:// or https:// URL")
        return WebhookDriver(options["webhook_url"], secret.encode(),
                             queue_size=int(options.get("webhook_queue_size", "1000")),
                             retries=int(options.get("webhook_retries", "3")),
                             backoff=float(options.get("webhook_backoff", "0.5")),
                             timeout=float(options.get("webhook_timeout", "5")))
    raise ValueError(f"unknown notification driver {name!r} (available: log, webhook)")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _event(obj: Any, old: dict[str, str | None], deleted: bool) -> dict[str, Any]:
    object_type, shape, fields = _SHAPES[type(obj)]
    payload = shape(obj)
    new = {f: getattr(obj, f) for f in fields}
    if deleted:
        new[fields[0]] = payload[fields[0]] = _DELETED
    return {"event_type": f"{object_type}.status.update", "object_type": object_type,
            "object_id": obj.id, "payload": payload,
            "old_status": old, "new_status": new, "timestamp": _now()}


def _changes(session: Session) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        if type(obj) not in _SHAPES:
            continue
        fields = _SHAPES[type(obj)][2]
        state = inspect(obj)
        deleted = obj in session.deleted
        old: dict[str, str | None] = {}
        changed = deleted or obj in session.new
        for field in fields:
            history = state.attrs[field].history
            if history.has_changes():
                changed = True
                old[field] = history.deleted[0] if history.deleted else None
            else:
                old[field] = getattr(obj, field)
        if obj in session.new:
            old = dict.fromkeys(fields)
        if changed:
            out.append(_event(obj, old, deleted))
    return out


def install(sessions: sessionmaker[Session], notifier: Notifier) -> None:
    """Publish every committed status change made through ``sessions``.

    Without drivers nothing is hooked: the store pays for events only when
    someone listens."""
    if not notifier.drivers:
        return

    # after_flush: ids and defaults are set, while new/dirty/deleted and the
    # attribute history still show what this flush changed.
    @event.listens_for(sessions, "after_flush")
    def _collect(session: Session, _context: Any) -> None:
        with session.no_autoflush:
            session.info.setdefault("status_events", []).extend(_changes(session))

    # Bulk ORM statements (``session.execute(delete(Model).where(...))`` or
    # ``update(Model)...``) skip the flush: the rows they touch are read first
    # (and, for an UPDATE, again after it) to find the status changes.
    @event.listens_for(sessions, "do_orm_execute")
    def _bulk(state: Any) -> Any:
        mapper = state.bind_mapper
        if not (state.is_delete or state.is_update) or mapper is None \
                or mapper.class_ not in _SHAPES:
            return None
        model = mapper.class_
        fields = _SHAPES[model][2]
        where = state.statement.whereclause
        query = select(model) if where is None else select(model).where(where)
        if isinstance(state.parameters, list):  # bulk UPDATE by primary key: those rows
            query = select(model).where(model.id.in_(
                [p["id"] for p in state.parameters if "id" in p]))
        session = state.session
        events = session.info.setdefault("status_events", [])
        with session.no_autoflush:
            rows = list(session.scalars(query))
            before = {obj.id: {f: getattr(obj, f) for f in fields} for obj in rows}
            if state.is_delete:
                events.extend(_event(obj, before[obj.id], True) for obj in rows)
                return None
            result = state.invoke_statement()
            if before:
                fresh = select(model).where(model.id.in_(list(before))).execution_options(
                    populate_existing=True)
                for obj in session.scalars(fresh):
                    if {f: getattr(obj, f) for f in fields} != before[obj.id]:
                        events.append(_event(obj, before[obj.id], False))
            return result

    @event.listens_for(sessions, "after_commit")
    def _publish(session: Session) -> None:
        events = session.info.pop("status_events", [])
        if events:
            notifier.publish(events)

    @event.listens_for(sessions, "after_rollback")
    def _discard(session: Session) -> None:
        session.info.pop("status_events", None)



def from_options(options: dict[str, str]) -> Notifier:
    """The notifier for ``[notifications]``: ``drivers``, comma-separated (may be empty)."""
    names = [n.strip() for n in options.get("drivers", "").split(",") if n.strip()]
    return Notifier([make_driver(name, options) for name in names])
