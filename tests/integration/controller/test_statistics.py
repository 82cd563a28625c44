"""Listener statistics from a real amphora through both drivers side by side:
its traffic moves the Prometheus exporter's counters, which equal the state
store's totals; after a failover the dead amphora's series are gone and the
replacement's count from zero."""

from __future__ import annotations

from pathlib import Path

from controller_stub.controller.statistics import PrometheusStats
from tests.integration.controller.conftest import Site, wait_for
from tests.integration.controller.test_healing import (
    _create,
    _failover_done,
    _kill,
    _service,
)
from tests.support.prometheus import Series, scrape, stored

BOTH = "[statistics]\ndrivers = state_store, prometheus\nprometheus_port = 0\n"
CONNECTIONS = "amphora_listener_total_connections_total"


def _of(series: Series, amphora_id: str) -> Series:
    return {key: value for key, value in series.items() if key[1] == amphora_id}


def _agree(port: int, sessions: object, amphora_id: str, listener_id: str,
           connections: float) -> Series | None:
    """The exporter's series of the amphora when they equal the store's and
    count at least ``connections``; None until then."""
    exported = scrape(port)
    if exported.get((CONNECTIONS, amphora_id, listener_id), -1) < connections:
        return None
    return exported if exported == stored(sessions) else None


def test_traffic_moves_the_exporter_like_the_store(site: Site, tmp_path: Path) -> None:
    with _service(site, tmp_path, extra=BOTH) as service:
        (exporter,) = [d for d in service.statistics.drivers if isinstance(d, PrometheusStats)]
        lb = _create(service, site, "SINGLE")
        (listener,) = [li["id"] for li in lb["listeners"]]
        (amphora,) = service.api.amphorae(lb["id"])
        first = wait_for(lambda: _agree(exporter.port, service.sessions, amphora["id"],
                                        listener, 0), 15, "the amphora's first statistics")
        counted = first[(CONNECTIONS, amphora["id"], listener)]
        bytes_in = first[("amphora_listener_bytes_in_total", amphora["id"], listener)]
        assert site.served_by(lb["vip_address"], {"m1", "m2"}) == {"m1", "m2"}  # 12 requests
        moved = wait_for(lambda: _agree(exporter.port, service.sessions, amphora["id"],
                                        listener, counted + 12), 15,
                         "the requests counted alike by the exporter and the store")
        assert moved[("amphora_listener_bytes_in_total", amphora["id"], listener)] > bytes_in
        assert moved[("amphora_listener_bytes_out_total", amphora["id"], listener)] > 0

        _kill(amphora)
        wait_for(lambda: _failover_done(service, lb["id"], amphora["id"]), 60,
                 "the dead amphora replaced")
        (replacement,) = service.api.amphorae(lb["id"])
        wait_for(lambda: not _of(scrape(exporter.port), amphora["id"]), 10,
                 "the dead amphora's series forgotten")
        assert site.served_by(lb["vip_address"], {"m1", "m2"}) == {"m1", "m2"}
        after = wait_for(lambda: _agree(exporter.port, service.sessions, replacement["id"],
                                        listener, 12), 15,
                         "the replacement's requests counted alike")
    assert _of(after, amphora["id"]) == {}
    assert {key[1] for key in after} == {replacement["id"]}
