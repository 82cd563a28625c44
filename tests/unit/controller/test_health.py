"""Heartbeats into the store: Octavia's status mapping, statistics summed
from increments, a batch in one transaction."""

from __future__ import annotations

from pathlib import Path

from controller_stub.controller import db, models
from controller_stub.controller.health import store_batch


def _lb(sessions, member_count: int = 4):  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        lb = models.LoadBalancer(topology="SINGLE", provisioning_status="ACTIVE",
                                 operating_status="ONLINE")
        pool = models.Pool(load_balancer=lb, protocol="HTTP", lb_algorithm="ROUND_ROBIN",
                           provisioning_status="ACTIVE", operating_status="ONLINE")
        members = [models.Member(pool=pool, address=f"198.51.100.{i}", protocol_port=80,
                                 provisioning_status="ACTIVE", operating_status="OFFLINE")
                   for i in range(member_count)]
        listener = models.Listener(load_balancer=lb, protocol="HTTP", protocol_port=80,
                                   provisioning_status="ACTIVE", operating_status="ONLINE")
        amphora = models.Amphora(load_balancer=lb, status="ALLOCATED", role="STANDALONE")
        session.add_all([lb, pool, listener, amphora, *members])
        session.flush()
        return amphora.id, lb.id, listener.id, pool.id, [m.id for m in members]


def _message(amp: str, listener: str, pool: str, members: dict[str, str],
             status: str = "OPEN", pool_status: str = "UP") -> dict:  # type: ignore[type-arg]
    return {"id": amp, "seq": 1, "ver": 4, "listeners": {listener: {
        "status": status, "stats": {"tx": 10, "rx": 5, "conns": 2, "totconns": 3, "ereq": 1}}},
        "pools": {f"{pool}:{listener}": {"status": pool_status, "members": members}}}


def test_statuses_and_statistics(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    amp, lb_id, listener, pool, members = _lb(sessions)
    reported = dict(zip(members, ["UP", "DRAIN", "MAINT", "no check"], strict=True))
    for _ in range(2):
        with sessions.begin() as session:
            store_batch(session, {amp: _message(amp, listener, pool, reported)},
                        models.utcnow())
    with sessions() as session:
        assert [session.get(models.Member, m).operating_status for m in members] == [
            "ONLINE", "DRAINING", "OFFLINE", "NO_MONITOR"]
        assert session.get(models.Pool, pool).operating_status == "ONLINE"
        assert session.get(models.LoadBalancer, lb_id).operating_status == "ONLINE"
        stats = session.get(models.ListenerStatistics, (listener, amp))
        assert (stats.bytes_in, stats.bytes_out, stats.active_connections,
                stats.total_connections, stats.request_errors) == (10, 20, 2, 6, 2)
        assert session.get(models.AmphoraHealth, amp) is not None

    # one member DOWN: member ERROR, pool and LB DEGRADED; a FULL listener DEGRADED
    reported[members[0]] = "DOWN"
    with sessions.begin() as session:
        store_batch(session, {amp: _message(amp, listener, pool, reported, status="FULL")},
                    models.utcnow())
    with sessions() as session:
        assert session.get(models.Member, members[0]).operating_status == "ERROR"
        assert session.get(models.Pool, pool).operating_status == "DEGRADED"
        assert session.get(models.Listener, listener).operating_status == "DEGRADED"
        assert session.get(models.LoadBalancer, lb_id).operating_status == "DEGRADED"

    # pool DOWN: ERROR
    with sessions.begin() as session:
        store_batch(session, {amp: _message(amp, listener, pool, reported,
                                            pool_status="DOWN")}, models.utcnow())
    with sessions() as session:
        assert session.get(models.Pool, pool).operating_status == "ERROR"


def test_pending_lb_and_foreign_listener_untouched(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    amp, lb_id, listener, pool, members = _lb(sessions, 1)
    _other_amp, _other_lb, other_listener, _p, _m = _lb(sessions, 1)
    with sessions.begin() as session:
        session.get(models.LoadBalancer, lb_id).provisioning_status = "PENDING_UPDATE"
    message = _message(amp, listener, pool, {members[0]: "DOWN"})
    message["listeners"][other_listener] = message["listeners"][listener]
    with sessions.begin() as session:
        store_batch(session, {amp: message}, models.utcnow())
    with sessions() as session:
        assert session.get(models.Member, members[0]).operating_status == "OFFLINE"
        assert session.get(models.ListenerStatistics, (other_listener, amp)) is None
        assert session.get(models.ListenerStatistics, (listener, amp)) is not None
        assert session.get(models.AmphoraHealth, amp) is not None
