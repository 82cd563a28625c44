"""Housekeeping against a real store: what is purged and what stays, which
certificates are due, an unreachable amphora's rotation failing and being
recorded without stopping the others, and the configuration keys."""

from __future__ import annotations

import datetime
import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controller_stub.client import AgentClient, Timeouts
from controller_stub.controller import config as config_mod
from controller_stub.controller import db, models
from controller_stub.controller.flows import Budget
from controller_stub.controller.housekeeping import (
    Housekeeper,
    HousekeepingSettings,
    purge_deleted,
    rotate_certificates,
)
from controller_stub.pki import CertificateAuthority, Issued

DAY = datetime.timedelta(days=1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Unreachable:
    """A compute driver whose amphorae are real agent clients to a closed port."""

    def __init__(self, tmp_path: Path) -> None:
        self.ca = CertificateAuthority.create()
        self.ca_file, _ = self.ca.write(tmp_path / "ca")
        self.client_cert = self.ca.issue_client().write(tmp_path / "client.pem")
        self.port = _free_port()
        self.issued: list[str] = []

    def amphora_certificate(self, amphora_id: str) -> Issued:
        self.issued.append(amphora_id)
        return self.ca.issue_amphora(amphora_id)

    def client(self, amphora_id: str, compute_data: dict[str, Any], *, retries: int,
               retry_interval: float, timeout: float) -> AgentClient:
        return AgentClient("127.0.0.1", amphora_id, ca_file=str(self.ca_file),
                           client_cert=str(self.client_cert), port=self.port, retries=retries,
                           retry_interval=retry_interval,
                           timeouts=Timeouts(connect=timeout, read=timeout))


def _lb(session: Any, status: str = "ACTIVE", **amphorae: datetime.datetime | None) -> str:
    lb = models.LoadBalancer(topology="SINGLE", provisioning_status=status,
                             operating_status="ONLINE")
    session.add(lb)
    for amphora_id, expires in amphorae.items():
        session.add(models.Amphora(id=amphora_id, load_balancer=lb, status="ALLOCATED",
                                   role="STANDALONE", cert_expiration=expires,
                                   compute_data={}))
    session.flush()
    return lb.id


def test_due_certificates_are_tried_soonest_first_and_failures_recorded(
        tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    now = models.utcnow()
    ids = {name: f"00000000-0000-4000-8000-00000000000{i}" for i, name in enumerate(
        ["soon", "sooner", "unknown", "later", "busy"])}
    with sessions.begin() as session:
        _lb(session, **{ids["soon"]: now + 5 * DAY, ids["sooner"]: now + DAY,
                        ids["unknown"]: None, ids["later"]: now + 300 * DAY})
        _lb(session, "PENDING_UPDATE", **{ids["busy"]: now + DAY})
    compute = Unreachable(tmp_path)
    report = rotate_certificates(sessions, compute,  # type: ignore[arg-type]
                                 before=14 * 86400, budget=Budget(agent_timeout=0.5))
    # unknown expiry first, then by expiry; the far one and the PENDING LB's are left
    assert compute.issued == [ids["unknown"], ids["sooner"], ids["soon"]]
    assert report.rotated == []
    assert set(report.failed) == {ids["unknown"], ids["sooner"], ids["soon"]}
    assert all(r.startswith("amphora unreachable") for r in report.failed.values())
    with sessions() as session:
        reasons = {a.id: a.status_reason for a in session.scalars(select(models.Amphora))}
    assert reasons[ids["soon"]].startswith("certificate rotation: amphora unreachable")
    assert reasons[ids["later"]] is None and reasons[ids["busy"]] is None


def test_rotation_stops_at_its_budget_and_leaves_the_rest(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    with sessions.begin() as session:
        _lb(session, **{f"00000000-0000-4000-8000-00000000000{i}": None for i in range(4)})
    compute = Unreachable(tmp_path)
    report = rotate_certificates(sessions, compute,  # type: ignore[arg-type]
                                 before=86400, budget=Budget(seconds=0.0))
    assert compute.issued == []
    assert report.deferred == 4


def test_purge_removes_expired_and_dangling_rows_only(tmp_path: Path) -> None:
    check_purge(db.open_store(f"sqlite:///{tmp_path}/s.db"))


def check_purge(sessions: Any) -> None:
    """What the purge removes and keeps (also run on PostgreSQL by the integration tests)."""
    old = models.utcnow() - 10 * DAY
    with sessions.begin() as session:
        live = _lb(session, **{"live-amp": None})
        gone = models.LoadBalancer(topology="SINGLE", provisioning_status="DELETED",
                                   operating_status="OFFLINE", created_at=old, updated_at=old)
        pool = models.Pool(load_balancer=gone, protocol="HTTP", lb_algorithm="ROUND_ROBIN",
                           provisioning_status="DELETED", operating_status="OFFLINE")
        gone_listener = models.Listener(
            load_balancer=gone, protocol="HTTP", protocol_port=80,
            provisioning_status="DELETED", operating_status="OFFLINE")
        session.add_all([gone, pool, gone_listener])
        session.flush()
        gone_listener.default_pool_id = pool.id  # references a purge must undo first
        session.add(models.L7Policy(listener=gone_listener, action="REDIRECT_TO_POOL",
                                    redirect_pool_id=pool.id, provisioning_status="DELETED",
                                    operating_status="OFFLINE"))
        recent = models.LoadBalancer(topology="SINGLE", provisioning_status="DELETED",
                                     operating_status="OFFLINE")
        held = models.LoadBalancer(topology="SINGLE", provisioning_status="DELETED",
                                   operating_status="OFFLINE", created_at=old, updated_at=old)
        session.add_all([recent, held, models.Amphora(
            id="held-amp", load_balancer=held, status="ALLOCATED", role="STANDALONE",
            compute_data={})])
        session.add(models.Amphora(id="dead-amp", status="DELETED", role="STANDALONE",
                                   compute_data={}, created_at=old, updated_at=old))
        session.add_all([models.AmphoraHealth(amphora_id="live-amp", last_update=old),
                         models.AmphoraHealth(amphora_id="vanished", last_update=old)])
        listener = models.Listener(load_balancer_id=live, protocol="HTTP", protocol_port=80,
                                   provisioning_status="ACTIVE", operating_status="ONLINE")
        session.add(listener)
        session.flush()
        session.add_all([
            models.ListenerStatistics(listener_id=listener.id, amphora_id="live-amp"),
            models.ListenerStatistics(listener_id=listener.id, amphora_id="vanished"),
            models.ListenerStatistics(listener_id="no-listener", amphora_id="live-amp")])
        gone_id, recent_id, held_id = gone.id, recent.id, held.id
    purged = purge_deleted(sessions, older_than=7 * 86400)
    assert purged == {"amphora": 1, "load_balancer": 1, "amphora_health": 1,
                      "listener_statistics": 2}
    with sessions() as session:
        lbs = set(session.scalars(select(models.LoadBalancer.id)))
        assert lbs == {live, recent_id, held_id}
        assert gone_id not in lbs
        assert list(session.scalars(select(models.Pool))) == []
        assert list(session.scalars(select(models.L7Policy))) == []
        assert set(session.scalars(select(models.Amphora.id))) == {"live-amp", "held-amp"}
        assert list(session.scalars(select(models.AmphoraHealth.amphora_id))) == ["live-amp"]
        assert [(s.listener_id, s.amphora_id) for s in session.scalars(
            select(models.ListenerStatistics))] == [(listener.id, "live-amp")]
    assert purge_deleted(sessions, older_than=7 * 86400) == {}


def test_housekeeper_purges_old_flows_and_survives_a_failing_part(tmp_path: Path) -> None:
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    old = models.utcnow() - DAY
    with sessions.begin() as session:
        lb = _lb(session, **{"00000000-0000-4000-8000-000000000001": None})
        for state in ("DONE", "FAILED", "RUNNING"):
            session.add(models.Flow(kind="lb_update", load_balancer_id=lb, state=state,
                                    created_at=old, updated_at=old))
    # a driver without amphora_certificate: rotation fails for each amphora, the rest runs
    report = Housekeeper(sessions, object(), HousekeepingSettings(orphans=False),  # type: ignore[arg-type]
                         Budget()).run_once()
    assert list(report.failed) == ["00000000-0000-4000-8000-000000000001"]
    assert report.purged == {"flow": 2}
    with sessions() as session:
        assert list(session.scalars(select(models.Flow.state))) == ["RUNNING"]


def test_housekeeping_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.conf"
    path.write_text("[housekeeping]\ninterval = 30\ndeleted_retention = 3600\n"
                    "cert_rotate_before = 86400\ncert_validity_days = 30\n"
                    "orphan_cleanup = false\n", encoding="utf-8")
    settings = config_mod.load(path).housekeeping
    assert settings == HousekeepingSettings(interval=30, flow_retention=3600,
                                            deleted_retention=3600, cert_rotate_before=86400,
                                            cert_validity=30 * 86400, orphans=False)
    path.write_text("[housekeeping]\ncert_rotate_before = 2592000\ncert_validity_days = 30\n",
                    encoding="utf-8")
    with pytest.raises(ValueError, match="cert_rotate_before"):
        config_mod.load(path)
    path.write_text("[controller]\n", encoding="utf-8")
    assert config_mod.load(path).housekeeping == HousekeepingSettings()
