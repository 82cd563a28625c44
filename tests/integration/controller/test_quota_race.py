"""Quotas hold under concurrency on PostgreSQL: controllers creating load balancers
for one project at the same moment never get past its limit together."""

from __future__ import annotations

import threading
import time

import pytest

from controller_stub.controller import db, quotas
from controller_stub.controller.api import Controller
from controller_stub.controller.errors import QuotaExceeded
from controller_stub.controller.imaging import StaticImage
from controller_stub.controller.pgcluster import ThrowawayPostgres

pytestmark = pytest.mark.root
IMAGE = StaticImage("img-26", {"haproxy_version": "2.6.12", "openssl_version": "3.0.11"})


def test_concurrent_creates_stop_at_the_limit(postgres: ThrowawayPostgres) -> None:
    url = postgres.create_database(f"quota_{int(time.time() * 1000)}")
    sessions = db.open_store(url)
    controllers = [Controller(db.open_store(url), IMAGE, quota_defaults={"load_balancer": 2})
                   for _ in range(6)]
    quotas.reset(sessions, "p")  # the project uses the configured default: 2
    start = threading.Barrier(len(controllers))
    outcomes: list[str] = []

    def create(controller: Controller) -> None:
        start.wait()
        try:
            controller.create_load_balancer(project_id="p")
            outcomes.append("created")
        except QuotaExceeded:
            outcomes.append("refused")
        except Exception as exc:  # anything else is a failure the assert below shows
            outcomes.append(repr(exc)[:300])
    threads = [threading.Thread(target=create, args=(c,)) for c in controllers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["created"] * 2 + ["refused"] * 4
    assert len([lb for lb in controllers[0].list_load_balancers()
                if lb["project_id"] == "p"]) == 2
