"""Quotas (Octavia's limits, counted in the change's own transaction), the catalog's
in-use rules and L7 policy positions, against a real SQLite state store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller_stub.controller import amphorae, catalog, db, l7, models, quotas
from controller_stub.controller.api import Controller
from controller_stub.controller.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
)
from controller_stub.controller.imaging import StaticImage

POOL = {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
        "members": [{"address": "198.51.100.10", "protocol_port": 80}]}


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    return db.open_store(f"sqlite:///{tmp_path}/state.db")


@pytest.fixture
def controller(sessions: sessionmaker[Session]) -> Controller:
    return Controller(sessions, StaticImage("img-26", {"haproxy_version": "2.6.12",
                                                       "openssl_version": "3.0.11"}),
                      quota_defaults={"member": 3})


def _settle(sessions: sessionmaker[Session], lb_id: str) -> None:
    """As if the LB's flow had finished: everything ACTIVE."""
    with sessions.begin() as session:
        lb = session.get(models.LoadBalancer, lb_id)
        assert lb is not None
        for obj in [lb, *lb.children()]:
            obj.provisioning_status = "ACTIVE"


def test_quota_defaults_rows_and_reset(sessions: sessionmaker[Session]) -> None:
    defaults = {**quotas.DEFAULTS, "listener": 5}
    assert quotas.get(sessions, "p1", defaults) == {
        "project_id": "p1", "loadbalancer": -1, "load_balancer": -1, "listener": 5,
        "pool": -1, "healthmonitor": -1, "health_monitor": -1, "member": -1,
        "l7policy": -1, "l7rule": -1}
    assert quotas.list_custom(sessions, defaults) == []
    body = quotas.update(sessions, "p1", {"loadbalancer": 2, "health_monitor": 7}, defaults)
    assert (body["loadbalancer"], body["healthmonitor"], body["listener"]) == (2, 7, 5)
    assert [q["project_id"] for q in quotas.list_custom(sessions, defaults)] == ["p1"]
    quotas.reset(sessions, "p1")
    assert quotas.get(sessions, "p1", defaults)["loadbalancer"] == -1
    with pytest.raises(InvalidRequest, match="unknown attribute bogus"):
        quotas.update(sessions, "p1", {"bogus": 1}, defaults)
    with pytest.raises(InvalidRequest, match=r"-1\.\.2000000000"):
        quotas.update(sessions, "p1", {"pool": -2}, defaults)


def test_quota_enforced_on_every_create_path(controller: Controller,
                                             sessions: sessionmaker[Session]) -> None:
    quotas.update(sessions, "p1", {"loadbalancer": 1}, controller.quota_defaults)
    lb = controller.create_load_balancer(project_id="p1", listeners=[
        {"protocol": "HTTP", "protocol_port": 80, "default_pool": POOL}])
    with pytest.raises(QuotaExceeded, match=r"^Quota has been met for resources: Load Balancer$"):
        controller.create_load_balancer(project_id="p1")
    controller.create_load_balancer(project_id="p2")  # another project is not counted
    _settle(sessions, lb["id"])
    pool_id = lb["pools"][0]["id"]
    controller.create_member(pool_id, address="198.51.100.11", protocol_port=80)
    _settle(sessions, lb["id"])
    controller.create_member(pool_id, address="198.51.100.12", protocol_port=80)
    _settle(sessions, lb["id"])
    with pytest.raises(QuotaExceeded, match="Member"):
        controller.create_member(pool_id, address="198.51.100.13", protocol_port=80)
    assert len(controller.get_pool(pool_id)["members"]) == 3
    # a limit lowered below usage still lets changes that add nothing of that kind through
    quotas.update(sessions, "p1", {"member": 1}, controller.quota_defaults)
    controller.update_pool(pool_id, name="renamed")


def test_catalog_in_use_rules(controller: Controller, sessions: sessionmaker[Session]) -> None:
    profile = controller.create_flavor_profile("fp", {"loadbalancer_topology": "SINGLE"})
    flavor = controller.create_flavor("small", profile["id"])
    with pytest.raises(Conflict, match="in use"):
        catalog.update_flavor_profile(sessions, profile["id"], flavor_data={})
    assert catalog.update_flavor_profile(sessions, profile["id"], name="fp2")["name"] == "fp2"
    with pytest.raises(Conflict):
        catalog.delete_flavor_profile(sessions, profile["id"])
    controller.create_load_balancer(flavor_id=flavor["id"])
    with pytest.raises(Conflict, match=f"Flavor {flavor['id']} is in use"):
        catalog.delete_flavor(sessions, flavor["id"])
    assert catalog.update_flavor(sessions, flavor["id"], enabled=False)["enabled"] is False
    with pytest.raises(InvalidRequest, match=r"Provider 'nope' is not enabled\."):
        catalog.check_provider("nope")


def test_l7_positions_follow_octavia(controller: Controller,
                                     sessions: sessionmaker[Session]) -> None:
    lb = controller.create_load_balancer(listeners=[{"protocol": "HTTP", "protocol_port": 80}])
    listener_id = lb["listeners"][0]["id"]
    ids = []
    for position in (None, None, 1):
        _settle(sessions, lb["id"])
        spec = {"action": "REJECT", **({"position": position} if position else {})}
        ids.append(controller.create_l7policy(listener_id, **spec)["id"])

    def positions() -> list[tuple[str, int]]:
        with sessions() as session:
            return [(p.id, p.position) for p in
                    session.get(models.Listener, listener_id).l7policies]
    assert positions() == [(ids[2], 1), (ids[0], 2), (ids[1], 3)]
    _settle(sessions, lb["id"])
    l7.update_l7policy(controller, ids[2], position=99)
    assert positions() == [(ids[0], 1), (ids[1], 2), (ids[2], 3)]
    _settle(sessions, lb["id"])
    controller.delete_l7policy(ids[0])
    live = dict(positions())
    assert (live[ids[1]], live[ids[2]]) == (1, 2)


def test_amphora_stats_are_a_404_until_a_heartbeat_counted(
        controller: Controller, sessions: sessionmaker[Session]) -> None:
    lb = controller.create_load_balancer()
    with sessions.begin() as session:
        session.add(models.Amphora(id="a1", load_balancer_id=lb["id"], status="ALLOCATED",
                                   role="STANDALONE"))
    assert amphorae.get_amphora(sessions, "a1")["loadbalancer_id"] == lb["id"]
    with pytest.raises(NotFound, match=r"^Amphora stats for a1 not found\.$"):
        amphorae.amphora_stats(sessions, "a1")
    with sessions.begin() as session:
        session.add(models.ListenerStatistics(listener_id="l1", amphora_id="a1", bytes_in=5,
                                              bytes_out=7, active_connections=1,
                                              total_connections=2, request_errors=0))
    assert amphorae.amphora_stats(sessions, "a1") == [{
        "id": "a1", "listener_id": "l1", "loadbalancer_id": lb["id"], "active_connections": 1,
        "bytes_in": 5, "bytes_out": 7, "request_errors": 0, "total_connections": 2}]
    with pytest.raises(NotFound):
        amphorae.amphora_stats(sessions, "a2")
