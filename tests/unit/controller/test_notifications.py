"""Notification drivers: webhook delivery (signed, retried, never blocking),
events from committed status changes only."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from controller_stub.controller import db, models, notifications
from tests.support.webhook import WebhookReceiver

SECRET = b"s3cret-for-tests"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


def _signed(received: Any) -> bool:
    expected = "sha256=" + hmac.new(SECRET, received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers["X-Amphora-Signature"], expected)


def test_webhook_retries_until_the_receiver_accepts(receiver: WebhookReceiver) -> None:
    receiver.fail_first = 2
    driver = notifications.WebhookDriver(receiver.url, SECRET, retries=3, backoff=0.01)
    try:
        driver.publish({"object_type": "loadbalancer", "object_id": "lb1", "n": 1})
        got = receiver.wait_for(lambda reqs: len(reqs) == 3, timeout=10)
        assert [r.json()["object_id"] for r in got] == ["lb1"] * 3
        assert all(_signed(r) for r in got)
        assert got[0].headers["Content-Type"] == "application/json"
    finally:
        driver.close()
    assert (driver.delivered, driver.failed, driver.dropped) == (1, 0, 0)


def test_webhook_gives_up_after_its_retries(receiver: WebhookReceiver) -> None:
    receiver.fail_first = 100
    driver = notifications.WebhookDriver(receiver.url, SECRET, retries=2, backoff=0.01)
    driver.publish({"object_id": "x"})
    driver.close()
    assert len(receiver.requests) == 3
    assert (driver.delivered, driver.failed) == (0, 1)


def test_a_stuck_receiver_never_blocks_publish_and_drops_are_counted(
        receiver: WebhookReceiver) -> None:
    receiver.hold.set()
    driver = notifications.WebhookDriver(receiver.url, SECRET, queue_size=2, retries=0)
    try:
        driver.publish({"n": 0})
        receiver.wait_for(lambda reqs: len(reqs) == 1, timeout=10)  # in flight, held
        for n in range(1, 10):  # would hang here if publish waited for the receiver
            driver.publish({"n": n})
        assert driver.dropped == 7  # two fit in the queue
    finally:
        receiver.released.set()
        driver.close()
    assert [r.json()["n"] for r in receiver.requests] == [0, 1, 2]
    assert driver.delivered == 3


def test_only_committed_status_changes_become_events(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/state.db")
    seen: list[dict[str, Any]] = []

    class Collect:
        def publish(self, event: dict[str, Any]) -> None:
            seen.append(event)

        def close(self) -> None:
            pass

    notifications.install(sessions, notifications.Notifier([Collect()]))
    with sessions.begin() as session:
        lb = models.LoadBalancer(topology="SINGLE", provisioning_status="PENDING_CREATE",
                                 operating_status="OFFLINE", vip_address="192.0.2.10")
        session.add(lb)
    assert [(e["object_type"], e["old_status"]["provisioning_status"],
             e["new_status"]["provisioning_status"]) for e in seen] == [
        ("loadbalancer", None, "PENDING_CREATE")]
    assert seen[0]["payload"]["vip_address"] == "192.0.2.10"
    assert seen[0]["object_id"] == lb.id == seen[0]["payload"]["id"]

    seen.clear()
    with sessions() as session:
        row = session.get(models.LoadBalancer, lb.id)
        row.provisioning_status = "ACTIVE"
        session.flush()
        session.rollback()
    assert seen == []

    with sessions.begin() as session:
        row = session.get(models.LoadBalancer, lb.id)
        row.name = "renamed"  # not a status change: no event
    assert seen == []

    with sessions.begin() as session:
        row = session.get(models.LoadBalancer, lb.id)
        row.provisioning_status, row.operating_status = "ACTIVE", "ONLINE"
    assert [(e["old_status"], e["new_status"]) for e in seen] == [
        ({"provisioning_status": "PENDING_CREATE", "operating_status": "OFFLINE"},
         {"provisioning_status": "ACTIVE", "operating_status": "ONLINE"})]
    assert seen[0]["payload"]["name"] == "renamed"

    seen.clear()
    with sessions.begin() as session:
        session.delete(session.get(models.LoadBalancer, lb.id))
    assert [e["new_status"]["provisioning_status"] for e in seen] == ["DELETED"]

    seen.clear()
    with sessions.begin() as session:
        session.add(models.Amphora(role="STANDALONE", status="ALLOCATED", compute_data={}))
    assert [(e["object_type"], e["new_status"]) for e in seen] == [
        ("amphora", {"status": "ALLOCATED"})]
    seen.clear()
    with sessions.begin() as session:  # a bulk update skips the flush: still an event
        session.execute(update(models.Amphora).values(status="ALLOCATED"))  # no change
        session.execute(update(models.Amphora).where(models.Amphora.role == "STANDALONE")
                        .values(status="ERROR", status_reason="stale"))
    assert [(e["old_status"], e["new_status"]) for e in seen] == [
        ({"status": "ALLOCATED"}, {"status": "ERROR"})]
    assert seen[0]["payload"]["status_reason"] == "stale"
    with sessions() as session:
        amphora_id = session.scalars(select(models.Amphora.id)).one()
    seen.clear()
    with sessions.begin() as session:  # bulk UPDATE by primary key (executemany)
        session.execute(update(models.Amphora), [{"id": amphora_id, "status": "BOOTING"}])
    assert [(e["object_id"], e["new_status"]) for e in seen] == [
        (amphora_id, {"status": "BOOTING"})]
    with sessions.begin() as session:
        session.execute(update(models.Amphora), [{"id": amphora_id, "status": "ERROR"}])
    seen.clear()
    with sessions.begin() as session:  # a bulk delete skips the flush: still an event
        session.execute(delete(models.Amphora).where(models.Amphora.role == "STANDALONE"))
    assert [(e["object_type"], e["old_status"], e["new_status"]) for e in seen] == [
        ("amphora", {"status": "ERROR"}, {"status": "DELETED"})]
    assert "compute_data" not in seen[0]["payload"]
    sessions.kw["bind"].dispose()


def test_no_drivers_hooks_nothing(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/state.db")
    notifications.install(sessions, notifications.from_options({}))
    with sessions.begin() as session:
        session.add(models.Amphora(role="STANDALONE", status="ALLOCATED", compute_data={}))
        session.flush()
        assert "status_events" not in session.info
    sessions.kw["bind"].dispose()


def test_webhook_options_are_required() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        notifications.from_options({"drivers": "log, webhook",
                                    "webhook_url": "http://127.0.0.1:1/"})
    with pytest.raises(ValueError, match="unknown notification driver"):
        notifications.from_options({"drivers": "smtp"})
