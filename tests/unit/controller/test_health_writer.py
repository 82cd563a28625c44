"""Heartbeats into the store: Octavia's status mapping, statistics summed
from increments, a batch in one transaction, only changes written (each an
event), the LB tree cache and what keeps it honest."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from amphora_contract.heartbeat import HeartbeatVerifier
from controller_stub.controller import db, models, notifications
from controller_stub.controller.health import HealthManager, HealthSettings, _FabricListener
from controller_stub.controller.health_writer import StatusWriter, store_batch


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


class _Recorder:
    """A notification driver that keeps the events."""

    def __init__(self) -> None:
        self.events: list[dict] = []  # type: ignore[type-arg]

    def publish(self, event: dict) -> None:  # type: ignore[type-arg]
        self.events.append(event)

    def close(self) -> None:
        pass


def _write(sessions, writer: StatusWriter, message: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    with sessions.begin() as session:
        writer.write(session, {message["id"]: message}, models.utcnow())


def test_only_changes_are_written_and_each_is_an_event(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    amp, lb_id, listener, pool, members = _lb(sessions, 2)
    recorder = _Recorder()
    notifications.install(sessions, notifications.Notifier([recorder]))
    writer = StatusWriter()
    message = _message(amp, listener, pool, {members[0]: "UP", members[1]: "UP"})
    _write(sessions, writer, message)
    changed = {(e["object_type"], e["object_id"]): (e["old_status"]["operating_status"],
                                                    e["new_status"]["operating_status"])
               for e in recorder.events}
    assert changed == {("member", members[0]): ("OFFLINE", "ONLINE"),
                       ("member", members[1]): ("OFFLINE", "ONLINE")}
    assert writer.status_updates == 2

    # the same heartbeat again: nothing changes, nothing is written, no event
    recorder.events.clear()
    for _ in range(3):
        _write(sessions, writer, message)
    assert recorder.events == []
    assert writer.status_updates == 2
    assert writer.tree_loads == 1  # the LB's tree came from the cache since

    # a member DOWN: member ERROR, pool and LB DEGRADED, one event each, payload whole
    _write(sessions, writer, _message(amp, listener, pool, {members[0]: "DOWN",
                                                            members[1]: "UP"}))
    changed = {(e["object_type"], e["object_id"]): e["new_status"]["operating_status"]
               for e in recorder.events}
    assert changed == {("member", members[0]): "ERROR", ("pool", pool): "DEGRADED",
                       ("loadbalancer", lb_id): "DEGRADED"}
    lb_event = next(e for e in recorder.events if e["object_type"] == "loadbalancer")
    assert lb_event["payload"]["operating_status"] == "DEGRADED"
    with sessions() as session:
        assert session.get(models.LoadBalancer, lb_id).operating_status == "DEGRADED"
    # the LB row this writer changed is still the cached tree's
    _write(sessions, writer, _message(amp, listener, pool, {members[0]: "DOWN",
                                                            members[1]: "UP"}))
    assert writer.tree_loads == 1


def test_a_change_by_a_flow_reloads_the_tree(tmp_path: Path) -> None:
    """admin_state_up set to false through the change protocol (the LB passes
    through PENDING_UPDATE): the member stays OFFLINE whatever is reported."""
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    amp, lb_id, listener, pool, members = _lb(sessions, 1)
    writer = StatusWriter()
    up = _message(amp, listener, pool, {members[0]: "UP"})
    _write(sessions, writer, up)
    with sessions.begin() as session:
        session.get(models.LoadBalancer, lb_id).provisioning_status = "PENDING_UPDATE"
        member = session.get(models.Member, members[0])
        member.admin_state_up = False
        member.provisioning_status = "PENDING_UPDATE"
    _write(sessions, writer, up)  # a flow is running: left alone
    with sessions() as session:
        assert session.get(models.Member, members[0]).operating_status == "ONLINE"
    with sessions.begin() as session:
        session.get(models.LoadBalancer, lb_id).provisioning_status = "ACTIVE"
        session.get(models.Member, members[0]).provisioning_status = "ACTIVE"
    _write(sessions, writer, up)
    with sessions() as session:
        assert session.get(models.Member, members[0]).operating_status == "OFFLINE"
        assert session.get(models.Pool, pool).operating_status == "ONLINE"
    assert writer.tree_loads == 3


def test_a_stale_cache_never_writes_over_a_pending_object(tmp_path: Path) -> None:
    """A change the cache has not seen (made in the same instant, or by SQL that
    kept the LB row as it was) is protected by the UPDATE's own conditions."""
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    amp, _lb_id, listener, pool, members = _lb(sessions, 1)
    writer = StatusWriter()
    _write(sessions, writer, _message(amp, listener, pool, {members[0]: "UP"}))
    with sessions.begin() as session:
        session.execute(update(models.Member.__table__).where(
            models.Member.__table__.c.id == members[0]).values(
            provisioning_status="PENDING_DELETE"))
    _write(sessions, writer, _message(amp, listener, pool, {members[0]: "DOWN"}))
    with sessions() as session:
        assert session.get(models.Member, members[0]).operating_status == "ONLINE"


def test_a_failed_batch_forgets_the_cache(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    amp, _lb_id, listener, pool, members = _lb(sessions, 1)
    writer = StatusWriter()
    with pytest.raises(RuntimeError), sessions.begin() as session:
        writer.write(session, {amp: _message(amp, listener, pool, {members[0]: "UP"})},
                     models.utcnow())
        raise RuntimeError("the commit never happens")
    writer.forget()
    _write(sessions, writer, _message(amp, listener, pool, {members[0]: "UP"}))
    with sessions() as session:
        assert session.get(models.Member, members[0]).operating_status == "ONLINE"


def test_a_superseded_message_is_counted_and_its_increments_kept(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    amp, _lb_id, listener, pool, members = _lb(sessions, 1)
    manager = HealthManager(sessions, HealthSettings(master_key="k" * 16), namespace=None,
                            bind_ip="127.0.0.1", start_failover=lambda *_: False)
    first = _message(amp, listener, pool, {members[0]: "UP"})
    second = _message(amp, listener, pool, {members[0]: "DOWN"})
    second["listeners"][listener]["stats"] = {"tx": 1, "rx": 2, "conns": 7, "totconns": 4,
                                              "ereq": 0}
    manager._collect(first, "test")
    manager._collect(second, "test")
    assert manager.flush() == 1
    status = manager.status()
    assert (status["received"], status["superseded"], status["stored"]) == (2, 1, 1)
    with sessions() as session:
        assert session.get(models.Member, members[0]).operating_status == "ERROR"
        stats = session.get(models.ListenerStatistics, (listener, amp))
        assert (stats.bytes_in, stats.bytes_out, stats.active_connections,
                stats.total_connections, stats.request_errors) == (7, 11, 7, 7, 1)
    assert second["listeners"][listener]["stats"]["tx"] == 1  # the message is not changed


def test_both_amphorae_of_a_pair_in_one_batch_the_later_wins(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    amp, lb_id, listener, pool, members = _lb(sessions, 2)
    with sessions.begin() as session:
        other = models.Amphora(load_balancer_id=lb_id, status="ALLOCATED", role="BACKUP")
        session.add(other)
        session.flush()
        backup = other.id
    writer = StatusWriter()
    with sessions.begin() as session:
        writer.write(session, {
            amp: _message(amp, listener, pool, {members[0]: "DOWN", members[1]: "UP"}),
            backup: _message(backup, listener, pool, {members[0]: "DOWN",
                                                      members[1]: "DOWN"})},
            models.utcnow())
    with sessions() as session:
        assert [session.get(models.Member, m).operating_status for m in members] == [
            "ERROR", "ERROR"]
        assert session.get(models.Pool, pool).operating_status == "ERROR"
        assert session.get(models.LoadBalancer, lb_id).operating_status == "DEGRADED"


def test_datagrams_the_kernel_drops_are_counted() -> None:
    """A receive buffer that overflows (nobody reading): every datagram is
    either still in the buffer or in the drop count."""
    listener = _FabricListener(None, HeartbeatVerifier(master_key="k" * 16),
                               lambda *_: None, addresses=[("127.0.0.1", 0)],
                               receive_buffer=4096)
    listener._bind()  # bound, but no thread reads it
    try:
        (sock,) = listener.sockets
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(200):
                sender.sendto(b"x" * 500, listener.bound[0])
        queued = 0
        with contextlib.suppress(BlockingIOError):
            while sock.recv(2048):
                queued += 1
        assert 0 < queued < 200
        assert listener.kernel_drops() == 200 - queued
    finally:
        listener._close()


def test_trees_of_silent_lbs_are_dropped(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    amp, lb_id, listener, pool, members = _lb(sessions, 1)
    other, other_lb, *_rest = _lb(sessions, 1)
    writer = StatusWriter(tree_seconds=0.05)
    _write(sessions, writer, _message(amp, listener, pool, {members[0]: "UP"}))
    assert writer.cached_lbs == {lb_id}
    deadline = time.monotonic() + 10
    while lb_id in writer.cached_lbs:  # that LB falls silent, the other keeps sending
        assert time.monotonic() < deadline, "the silent LB's tree is still cached"
        _write(sessions, writer, {"id": other, "seq": 1, "ver": 4, "listeners": {},
                                  "pools": {}})
    assert writer.cached_lbs == {other_lb}
