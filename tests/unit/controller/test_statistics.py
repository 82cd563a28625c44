"""Statistics drivers side by side: both receive the heartbeats' increments,
the state store sums them in the batch's transaction, the exporter keeps
running totals (active connections a gauge) equal to the store's, a
rolled-back batch counts in neither, deleted amphorae are forgotten."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, text

from controller_stub.controller import db, models, statistics
from controller_stub.controller.health import HealthManager, HealthSettings
from tests.support.prometheus import scrape, stored
from tests.unit.controller.test_health_writer import _lb, _message


@pytest.fixture
def publisher() -> Iterator[statistics.StatsPublisher]:
    both = statistics.from_options({"drivers": "state_store, prometheus",
                                    "prometheus_port": "0"})
    yield both
    both.close()


def _heartbeat(amp: str, listener: str, pool: str, member: str, *, rx: int, tx: int,
               conns: int, totconns: int, ereq: int) -> dict:  # type: ignore[type-arg]
    message = _message(amp, listener, pool, {member: "UP"})
    message["listeners"][listener]["stats"] = {"rx": rx, "tx": tx, "conns": conns,
                                               "totconns": totconns, "ereq": ereq}
    return message


def test_both_drivers_sum_increments_and_agree(tmp_path: Path,
                                               publisher: statistics.StatsPublisher) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    amp, _lb_id, listener, pool, members = _lb(sessions, 1)
    other, _other_lb, other_listener, other_pool, other_members = _lb(sessions, 1)
    manager = HealthManager(sessions, HealthSettings(master_key="k" * 16), namespace=None,
                            bind_ip="127.0.0.1", start_failover=lambda *_: False,
                            statistics=publisher)
    prom = publisher.drivers[1]
    port = prom.port  # type: ignore[attr-defined]
    for rx, conns in ((100, 3), (50, 1)):
        manager._collect(_heartbeat(amp, listener, pool, members[0], rx=rx, tx=2 * rx,
                                    conns=conns, totconns=5, ereq=1), "test")
        manager._collect(_heartbeat(other, other_listener, other_pool, other_members[0],
                                    rx=7, tx=9, conns=0, totconns=2, ereq=0), "test")
        assert manager.flush() == 2
    exported = scrape(port)
    assert exported[("amphora_listener_bytes_in_total", amp, listener)] == 150
    assert exported[("amphora_listener_bytes_out_total", amp, listener)] == 300
    assert exported[("amphora_listener_total_connections_total", amp, listener)] == 10
    assert exported[("amphora_listener_request_errors_total", amp, listener)] == 2
    assert exported[("amphora_listener_active_connections", amp, listener)] == 1  # a gauge
    assert exported[("amphora_listener_total_connections_total", other, other_listener)] == 4
    assert exported == stored(sessions)

    # a batch whose transaction fails (its upsert finds no table) counts nowhere
    with sessions.begin() as session:
        session.execute(text("DROP TABLE listener_statistics"))
    manager._collect(_heartbeat(other, other_listener, other_pool, other_members[0],
                                rx=1000, tx=1000, conns=9, totconns=1000, ereq=0), "test")
    assert manager.flush() == 1
    assert (manager.failed_batches, manager.stored) == (1, 4)
    assert scrape(port) == exported

    # deleted objects are forgotten: a listener of one amphora, another amphora
    with sessions.begin() as session:
        session.execute(delete(models.Listener).where(models.Listener.id == listener))
        session.execute(delete(models.Amphora).where(models.Amphora.id == other))
    assert manager.forget_deleted() == 2
    assert scrape(port) == {}
    assert manager.forget_deleted() == 0
    sessions.kw["bind"].dispose()


def test_prometheus_binds_only_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        statistics.from_options({"drivers": "prometheus", "prometheus_host": "0.0.0.0"})
    with pytest.raises(ValueError, match="unknown statistics driver"):
        statistics.from_options({"drivers": "statsd"})
