"""Housekeeping on the local fabric: a real amphora's short-lived server
certificate rotated through the agent (which then serves the new one over
mutual TLS while the LB keeps serving), orphaned amphorae removed (a row with
no LB and a namespace with no row), old DELETED rows and finished flows purged."""

from __future__ import annotations

import datetime
import socket
import ssl
import uuid
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import select

from controller_stub.compute import nsutil
from controller_stub.compute.local import AGENT_PORT
from controller_stub.controller import config as config_mod
from controller_stub.controller import db, models
from controller_stub.controller.daemon import Service
from controller_stub.controller.pgcluster import ThrowawayPostgres
from tests.integration.controller.conftest import Site, wait_for
from tests.unit.controller.test_housekeeping import check_purge

HOUR = 3600.0


def _served_certificate(service: Service, amphora: dict[str, Any]) -> x509.Certificate:
    """The certificate the agent presents on a new mutual-TLS connection, checked
    against the fabric's CA and the amphora id as the controller checks it."""
    fabric = service.compute.fabric  # type: ignore[attr-defined]
    context = ssl.create_default_context(cafile=str(fabric.ca_file))
    context.load_cert_chain(str(fabric.client_cert))

    def handshake() -> bytes:
        with socket.create_connection((amphora["lb_network_ip"], AGENT_PORT), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=amphora["id"]) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return der

    return x509.load_der_x509_certificate(nsutil.run_in(fabric.namespace, handshake))


def _expiry(service: Service, amphora_id: str) -> datetime.datetime | None:
    with service.sessions() as session:
        amphora = session.get(models.Amphora, amphora_id)
        assert amphora is not None
        return amphora.cert_expiration


def _service(site: Site, tmp_path: Path, housekeeping: str) -> Service:
    """A service whose ``[housekeeping]`` section is ``housekeeping``."""
    path = site.config(f"sqlite:///{tmp_path}/state.db")
    text = path.read_text(encoding="utf-8")
    assert "[housekeeping]\ninterval = 3600\n" in text
    path.write_text(text.replace("[housekeeping]\ninterval = 3600\n",
                                 f"[housekeeping]\n{housekeeping}"), encoding="utf-8")
    return Service(config_mod.load(path))


def test_rotation_orphans_and_purge_on_the_fabric(site: Site, tmp_path: Path) -> None:
    with _service(site, tmp_path, "interval = 3600\ncert_rotate_before = 86400\n"
                  "flow_retention = 0\ndeleted_retention = 3600\n") as service:
        api, compute = service.api, service.compute
        compute.cert_validity = 2 * HOUR  # type: ignore[attr-defined]
        lb = api.wait(api.create_load_balancer(name="web", listeners=[{
            "protocol": "HTTP", "protocol_port": 80,
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": str(m.ipv4), "protocol_port": 80}
                                         for m in site.members]}}])["id"], timeout=60)
        assert lb["provisioning_status"] == "ACTIVE"
        (amphora,) = api.amphorae(lb["id"])
        booted = _served_certificate(service, amphora)
        assert booted.not_valid_after_utc.replace(tzinfo=None) == _expiry(service, amphora["id"])
        assert booted.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < (
            datetime.timedelta(hours=2))

        # an amphora row whose LB is gone and an amphora namespace no row names
        compute.cert_validity = 730 * 86400.0  # type: ignore[attr-defined]
        row_orphan, ns_orphan = str(uuid.uuid4()), str(uuid.uuid4())
        booted_orphans = {}
        for orphan in (row_orphan, ns_orphan):
            booted_orphans[orphan] = compute.boot(orphan, topology="SINGLE", flavor={},
                                                  zone=None, timeout=30)
        old = models.utcnow() - datetime.timedelta(days=2)
        with service.sessions.begin() as session:
            session.add(models.Amphora(id=row_orphan, status="ALLOCATED", role="STANDALONE",
                                       compute_data=booted_orphans[row_orphan]))
            gone = models.LoadBalancer(topology="SINGLE", provisioning_status="DELETED",
                                       operating_status="OFFLINE", created_at=old,
                                       updated_at=old)
            session.add(gone)
            session.flush()
            gone_id = gone.id
        orphan_namespaces = {d["namespace"] for d in booted_orphans.values()}
        assert orphan_namespaces <= set(nsutil.listed(site.fabric.prefix))

        report = service.housekeeper.run_once()

        assert report.rotated == [amphora["id"]] and report.failed == {}
        rotated = _served_certificate(service, amphora)
        assert rotated.serial_number != booted.serial_number
        assert rotated.not_valid_after_utc.replace(tzinfo=None) == _expiry(
            service, amphora["id"])
        assert rotated.not_valid_after_utc - booted.not_valid_after_utc > (
            datetime.timedelta(days=700))
        assert sorted(report.orphans) == sorted(
            [row_orphan, booted_orphans[ns_orphan]["namespace"]])
        left = set(nsutil.listed(site.fabric.prefix))
        assert not orphan_namespaces & left
        assert amphora["compute_data"]["namespace"] in left
        # the fabric's other namespaces (members, client, the fabric itself) stay
        assert {m.namespace for m in site.members} | {site.client.namespace} <= left
        assert report.purged["flow"] >= 1 and report.purged["load_balancer"] == 1
        with service.sessions() as session:
            assert session.get(models.LoadBalancer, gone_id) is None
            assert set(session.scalars(select(models.Amphora.id))) == {amphora["id"]}
            assert list(session.scalars(select(models.Flow))) == []
        assert site.served_by(lb["vip_address"], {"m1", "m2"}) == {"m1", "m2"}

        # the next run has nothing to do
        again = service.housekeeper.run_once()
        assert (again.rotated, again.orphans, again.failed) == ([], [], {})


def test_purge_on_postgresql(postgres: ThrowawayPostgres) -> None:
    """The purge's deletes in an order PostgreSQL's foreign keys accept."""
    check_purge(db.open_store(postgres.create_database("purge")))


def test_the_daemon_runs_housekeeping_every_interval(site: Site, tmp_path: Path) -> None:
    with _service(site, tmp_path, "interval = 0.2\ndeleted_retention = 0\n") as service:
        assert service.cfg.housekeeping.interval == 0.2
        with service.sessions.begin() as session:
            gone = models.LoadBalancer(topology="SINGLE", provisioning_status="DELETED",
                                       operating_status="OFFLINE")
            session.add(gone)
            session.flush()
            gone_id = gone.id

        def purged() -> bool:
            with service.sessions() as session:
                return session.get(models.LoadBalancer, gone_id) is None

        wait_for(purged, 10, "the DELETED row purged by the daemon's housekeeping")
