"""The controller's state store and API without amphorae: migrations, Octavia's
PENDING immutability, flavor validation, capability refusal before any work,
and the SQLite lease compare-and-swap."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from controller_stub.controller import db, models
from controller_stub.controller.api import Controller
from controller_stub.controller.errors import Conflict, InvalidRequest, Unsupported
from controller_stub.controller.imaging import StaticImage
from controller_stub.controller.worker import Workers

LISTENER = {"protocol": "HTTP", "protocol_port": 80,
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": "198.51.100.10", "protocol_port": 80}]}}


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    return db.open_store(f"sqlite:///{tmp_path}/state.db")


@pytest.fixture
def controller(sessions: sessionmaker[Session]) -> Controller:
    return Controller(sessions, StaticImage("img-26", {"haproxy_version": "2.6.12",
                                                       "openssl_version": "3.0.11"}))


def _count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_migrations_create_every_table_and_rerun_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    db.open_store(url)
    db.open_store(url)  # a restart: upgrade head again is a no-op
    engine = db.make_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert set(models.Base.metadata.tables) <= tables
    assert "alembic_version" in tables
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    assert version == "0005"


def test_lb_is_immutable_while_pending(controller: Controller) -> None:
    lb = controller.create_load_balancer(name="lb", listeners=[LISTENER])
    assert lb["provisioning_status"] == "PENDING_CREATE"
    assert lb["operating_status"] == "OFFLINE"
    listener_id = lb["listeners"][0]["id"]
    with pytest.raises(Conflict, match="PENDING_CREATE"):
        controller.create_listener(lb["id"], protocol="TCP", protocol_port=81)
    with pytest.raises(Conflict):
        controller.update_listener(listener_id, connection_limit=10)
    with pytest.raises(Conflict):
        controller.delete_load_balancer(lb["id"], cascade=True)
    assert controller.get_listener(listener_id)["connection_limit"] == -1


def test_child_change_puts_lb_in_pending_update_with_one_flow(
        controller: Controller, sessions: sessionmaker[Session]) -> None:
    lb = controller.create_load_balancer(listeners=[LISTENER])
    with sessions.begin() as session:  # as if the create flow had finished
        for model in (models.LoadBalancer, models.Listener, models.Pool, models.Member):
            for row in session.scalars(select(model)):
                row.provisioning_status = "ACTIVE"
        for flow in session.scalars(select(models.Flow)):
            flow.state = "DONE"
    member = controller.create_member(lb["pools"][0]["id"], address="198.51.100.11",
                                      protocol_port=80)
    assert member["provisioning_status"] == "PENDING_CREATE"
    assert controller.get_load_balancer(lb["id"])["provisioning_status"] == "PENDING_UPDATE"
    with sessions() as session:
        kinds = [f.kind for f in session.scalars(select(models.Flow).where(
            models.Flow.state == "PENDING"))]
    assert kinds == ["member_update"]


def test_request_the_image_cannot_serve_is_refused_before_any_work(
        sessions: sessionmaker[Session]) -> None:
    old = Controller(sessions, StaticImage("img-20", {"haproxy_version": "2.0.33",
                                                      "openssl_version": "3.0.11"}))
    listener = {**LISTENER, "default_pool": {
        **LISTENER["default_pool"],
        "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3,
                          "url_path": "/health", "domain_name": "example.org",
                          "http_version": 1.1}}}
    with pytest.raises(Unsupported) as caught:
        old.create_load_balancer(listeners=[listener])
    message = str(caught.value)
    assert "domain_name" in message and "2.2" in message and "img-20" in message
    for model in (models.LoadBalancer, models.Listener, models.Amphora, models.Flow):
        assert _count(sessions, model) == 0


def test_http2_listener_is_refused_by_a_bookworm_image_and_served_by_trixie(
        sessions: sessionmaker[Session]) -> None:
    h2 = {"protocol": "TERMINATED_HTTPS", "protocol_port": 443,
          "default_tls_container_ref": "server.pem", "alpn_protocols": ["h2"],
          "default_pool": LISTENER["default_pool"]}
    bookworm = Controller(sessions, StaticImage("img-bookworm", {
        "haproxy_version": "2.6.12-1+deb12u4", "openssl_version": "3.0.17-1~deb12u2"}))
    with pytest.raises(Unsupported) as caught:
        bookworm.create_load_balancer(listeners=[h2])
    message = str(caught.value)
    assert "img-bookworm" in message and "listeners[0].alpn_protocols" in message
    assert "HTTP/2 towards clients" in message
    assert "needs HAProxy >= 3.0, target has 2.6.12" in message
    assert _count(sessions, models.LoadBalancer) == 0
    trixie = Controller(sessions, StaticImage("img-trixie", {
        "haproxy_version": "3.0.11-1+deb13u4", "openssl_version": "3.5.9-1"}))
    lb = trixie.create_load_balancer(listeners=[h2])
    listener = trixie.get_listener(lb["listeners"][0]["id"])
    assert listener["protocol"] == "TERMINATED_HTTPS" and listener["alpn_protocols"] == ["h2"]


def test_flavor_sets_topology_and_rejects_unknown_keys(controller: Controller,
                                                        sessions: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidRequest, match="unknown key"):
        controller.create_flavor_profile("bad", {"loadbalancer_topology": "SINGLE",
                                                 "amp_flavor": "x"})
    with pytest.raises(InvalidRequest, match="haproxy_threads"):
        controller.create_flavor_profile("bad", {"haproxy_threads": 0})
    with pytest.raises(InvalidRequest, match="compute_metadata"):
        controller.create_flavor_profile("bad", {"compute_metadata": {"k": "a\nb"}})
    profile = controller.create_flavor_profile("ha", {"loadbalancer_topology": "ACTIVE_STANDBY",
                                                      "haproxy_threads": 2,
                                                      "vrrp_advert_int": 2})
    flavor = controller.create_flavor("ha", profile["id"])
    lb = controller.create_load_balancer(flavor_id=flavor["id"])
    assert lb["topology"] == "ACTIVE_STANDBY"
    assert lb["flavor_id"] == flavor["id"]
    with sessions() as session:
        row = session.get(models.LoadBalancer, lb["id"])
        assert row.flavor_data["haproxy_threads"] == 2


def test_zone_restricts_vip_networks(controller: Controller) -> None:
    profile = controller.create_availability_zone_profile(
        "az1", {"compute_zone": "nova-az1", "management_network": "mgmt",
                "valid_vip_networks": ["vip"]})
    controller.create_availability_zone("az1", profile["id"])
    with pytest.raises(InvalidRequest, match="not valid in zone az1"):
        controller.create_load_balancer(vip_network_id="client", availability_zone="az1")
    lb = controller.create_load_balancer(vip_network_id="vip", availability_zone="az1")
    assert lb["availability_zone"] == "az1"


def _zones(controller: Controller, **compute: str) -> None:
    for name, compute_zone in compute.items():
        profile = controller.create_availability_zone_profile(
            name, {"compute_zone": compute_zone})
        controller.create_availability_zone(name, profile["id"])


def test_flavor_spreads_a_pair_across_two_compute_zones(
        controller: Controller, sessions: sessionmaker[Session]) -> None:
    _zones(controller, az1="z1", az2="z2", az3="z1")
    for bad in (["az1"], ["az1", "az1"], "az1", ["az1", "bad zone"]):
        with pytest.raises(InvalidRequest, match="availability_zones"):
            controller.create_flavor_profile("bad", {"availability_zones": bad})

    def flavor(topology: str, zones: list[str]) -> str:
        name = f"{topology}-{'-'.join(zones)}"
        profile = controller.create_flavor_profile(
            name, {"loadbalancer_topology": topology, "availability_zones": zones})
        return controller.create_flavor(name, profile["id"])["id"]

    with pytest.raises(InvalidRequest, match="needs loadbalancer_topology ACTIVE_STANDBY"):
        controller.create_load_balancer(flavor_id=flavor("SINGLE", ["az1", "az2"]))
    with pytest.raises(InvalidRequest, match="same compute zone z1"):
        controller.create_load_balancer(flavor_id=flavor("ACTIVE_STANDBY", ["az1", "az3"]))
    lb = controller.create_load_balancer(flavor_id=flavor("ACTIVE_STANDBY", ["az1", "az2"]))
    with sessions() as session:
        zones = session.get(models.LoadBalancer, lb["id"]).flavor_data["role_zones"]
    assert {role: (z["name"], z["compute_zone"]) for role, z in zones.items()} == {
        "MASTER": ("az1", "z1"), "BACKUP": ("az2", "z2")}


def test_only_one_controller_claims_a_flow_on_sqlite(
        controller: Controller, sessions: sessionmaker[Session]) -> None:
    controller.create_load_balancer()
    first = Workers(sessions, compute=None, owner="c1")  # type: ignore[arg-type]
    second = Workers(sessions, compute=None, owner="c2")  # type: ignore[arg-type]
    claimed = first.claim()
    assert claimed is not None
    assert second.claim() is None  # the lease is live
    with sessions() as session:
        flow = session.scalars(select(models.Flow)).one()
        assert (flow.owner, flow.state, flow.lease_version) == ("c1", "RUNNING", claimed[1])
    # a restarted c1 frees its own leases at once; c2 can then take the flow
    assert first.release_own() == 1
    taken = second.claim()
    assert taken is not None and taken[1] == claimed[1] + 1
