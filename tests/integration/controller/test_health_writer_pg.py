"""The health manager's writer on PostgreSQL: real signed datagrams from many
amphorae in one batch, statuses as Octavia maps them, statistics summed
exactly (also when a newer message supersedes one waiting), an event per
status change and none for a repeated heartbeat."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from amphora_contract import heartbeat as hb
from amphora_contract.heartbeat import derive_amphora_key
from controller_stub.controller import db, models, notifications
from controller_stub.controller.health import HealthManager, HealthSettings
from controller_stub.controller.pgcluster import ThrowawayPostgres

KEY = "writer-test-master-key-0123"
FLEET = 40


class _Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def publish(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _fleet(sessions: Any) -> list[tuple[str, str, str, str, list[str]]]:
    fleet = []
    with sessions.begin() as session:
        for _ in range(FLEET):
            lb = models.LoadBalancer(topology="SINGLE", provisioning_status="ACTIVE",
                                     operating_status="ONLINE")
            pool = models.Pool(load_balancer=lb, protocol="HTTP", lb_algorithm="ROUND_ROBIN",
                               provisioning_status="ACTIVE", operating_status="ONLINE")
            members = [models.Member(pool=pool, address=f"198.51.100.{i}", protocol_port=80,
                                     provisioning_status="ACTIVE", operating_status="OFFLINE")
                       for i in (1, 2)]
            listener = models.Listener(load_balancer=lb, protocol="HTTP", protocol_port=80,
                                       provisioning_status="ACTIVE", operating_status="ONLINE")
            amphora = models.Amphora(load_balancer=lb, status="ALLOCATED", role="STANDALONE")
            session.add_all([lb, pool, listener, amphora, *members])
            session.flush()
            fleet.append((amphora.id, lb.id, listener.id, pool.id, [m.id for m in members]))
    return fleet


def _send(manager: HealthManager, fleet: list[tuple[str, str, str, str, list[str]]],
          seq: int, second: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for amp, _lb, listener, pool, members in fleet:
            body = hb.message(amp, seq, {listener: {"status": "OPEN", "stats": {
                "tx": 100, "rx": 50, "conns": seq, "totconns": 2, "ereq": 1}}},
                {f"{pool}:{listener}": {"status": "UP",
                                        "members": {members[0]: "UP", members[1]: second}}})
            sock.sendto(hb.wrap_v4(body, derive_amphora_key(KEY, amp)), manager.address)


def test_heartbeats_into_postgresql(postgres: ThrowawayPostgres) -> None:
    sessions = db.open_store(postgres.create_database(f"hbw_{int(time.time() * 1000)}"))
    fleet = _fleet(sessions)
    recorder = _Recorder()
    notifications.install(sessions, notifications.Notifier([recorder]))
    settings = HealthSettings(enabled=True, master_key=KEY, bind_port=0, failover=False,
                              check_interval=3600)
    manager = HealthManager(sessions, settings, namespace=None, bind_ip="127.0.0.1",
                            start_failover=lambda *_: False).start()
    try:
        for seq in (1, 2, 3):  # sent back to back: some may supersede others
            _send(manager, fleet, seq, "DOWN")
        _until(lambda: manager.status()["received"] == 3 * FLEET, 30, "every heartbeat")
        _until(lambda: manager.flush() == 0 and not manager.status()["backlog"], 30,
               "the backlog written")
        status = manager.status()
        assert status["stored"] + status["superseded"] == 3 * FLEET
        assert (status["queue_full"], status["failed_batches"]) == (0, 0)
        with sessions() as session:
            for amp, lb_id, listener, pool, members in fleet:
                stats = session.get(models.ListenerStatistics, (listener, amp))
                assert (stats.bytes_in, stats.bytes_out, stats.active_connections,
                        stats.total_connections, stats.request_errors) == (150, 300, 3, 6, 3)
                assert [session.get(models.Member, m).operating_status
                        for m in members] == ["ONLINE", "ERROR"]
                assert session.get(models.Pool, pool).operating_status == "DEGRADED"
                assert session.get(models.LoadBalancer, lb_id).operating_status == "DEGRADED"
            assert session.scalar(select(func.count()).select_from(
                models.AmphoraHealth)) == FLEET
        _until(lambda: len(recorder.events) >= 4 * FLEET, 10, "the events")
        kinds = sorted((e["object_type"], e["new_status"]["operating_status"])
                       for e in recorder.events)
        assert kinds == sorted([("loadbalancer", "DEGRADED"), ("member", "ERROR"),
                                ("member", "ONLINE"), ("pool", "DEGRADED")] * FLEET)

        # steady state: the same statuses again write nothing and publish nothing
        updates = manager.writer.status_updates
        _send(manager, fleet, 4, "DOWN")
        _until(lambda: manager.status()["received"] == 4 * FLEET, 30, "the repeat")
        _until(lambda: manager.flush() == 0 and not manager.status()["backlog"], 30,
               "the repeat written")
        assert manager.writer.status_updates == updates
        assert manager.writer.tree_loads == FLEET  # each LB's tree loaded once
        assert len(recorder.events) == 4 * FLEET

        # the second members recover: member ONLINE, pool and LB ONLINE again
        _send(manager, fleet, 5, "UP")
        _until(lambda: len(recorder.events) == 7 * FLEET, 30, "the recovery events")
        with sessions() as session:
            assert {lb.operating_status for lb in session.scalars(
                select(models.LoadBalancer))} == {"ONLINE"}
    finally:
        manager.stop()
        sessions.kw["bind"].dispose()
