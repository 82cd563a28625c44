"""Durable work: a controller SIGKILLed at each step of a create resumes on
restart; on PostgreSQL a second controller takes over a dead one's flow; an
amphora made unreachable mid-update fails the flow within its budget, with
the LB in ERROR and the reason recorded."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from pyroute2 import IPRoute
from sqlalchemy import select

from amphora_contract import netns
from controller_stub.controller import db, models
from controller_stub.controller.api import Controller
from controller_stub.controller.flows import STEPS
from controller_stub.controller.imaging import LocalImage
from controller_stub.controller.pgcluster import ThrowawayPostgres
from tests.integration.controller.conftest import Site, pending_objects, wait_for

LISTENER = {"protocol": "HTTP", "protocol_port": 80,
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": []}}


def _listener(site: Site) -> dict:
    pool = dict(LISTENER["default_pool"])
    pool["members"] = [{"address": str(m.ipv4), "protocol_port": 80} for m in site.members]
    return {**LISTENER, "default_pool": pool}


def _flow(sessions, lb_id: str) -> models.Flow:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalars(select(models.Flow).where(
            models.Flow.load_balancer_id == lb_id)).one()


@pytest.mark.parametrize("step", [*STEPS["lb_create"], "boot_amphorae:after",
                                  "plug_vip:after"])
def test_sigkill_at_each_create_step_then_restart(site: Site, tmp_path: Path,
                                                   step: str) -> None:
    """Killed before each step (and after the work of the two that create
    things, before it is recorded): the restarted controller finishes the LB
    without waiting for its old lease, with one amphora and nothing PENDING."""
    url = f"sqlite:///{tmp_path}/state.db"
    sessions = db.open_store(url)
    api = Controller(sessions, LocalImage())
    config = site.config(url, controller_id="c1", lease=30.0)
    first = site.spawn(config, kill_at=f"lb_create:{step}")
    lb = api.create_load_balancer(listeners=[_listener(site)])
    assert first.wait(60) == -signal.SIGKILL
    assert api.get_load_balancer(lb["id"])["provisioning_status"] == "PENDING_CREATE"
    assert _flow(sessions, lb["id"]).owner == "c1"  # its lease outlives it (30 s)

    # the same controller restarted frees its own lease at once and resumes
    second = site.spawn(config)
    done = api.wait(lb["id"], timeout=20)  # well before the old lease would expire
    assert done["provisioning_status"] == "ACTIVE", done.get("status_reason")
    assert pending_objects(sessions) == []
    assert site.served_by(done["vip_address"], {"m1", "m2"}) == {"m1", "m2"}
    assert len(api.amphorae(lb["id"])) == 1
    amphora_namespaces = [n for n in site.fabric.leftovers()
                          if n.startswith(f"{site.fabric.prefix}-a")]
    assert len(amphora_namespaces) == 2  # the amphora and its HAProxy namespace, no leak
    api.delete_load_balancer(lb["id"], cascade=True)
    api.wait_deleted(lb["id"])
    assert [n for n in site.fabric.leftovers() if n.startswith(f"{site.fabric.prefix}-a")
            ] == []
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0


@pytest.fixture
def pg_url(postgres: ThrowawayPostgres) -> str:
    return postgres.create_database(f"ctl_{int(time.time() * 1000)}")


def test_survivor_finishes_dead_controllers_flow_on_postgresql(site: Site, pg_url: str) -> None:
    sessions = db.open_store(pg_url)
    api = Controller(sessions, LocalImage())
    doomed = site.spawn(site.config(pg_url, controller_id="a", lease=2.0),
                        kill_at="lb_create:push_config")
    lb = api.create_load_balancer(listeners=[_listener(site)])
    wait_for(lambda: _flow(sessions, lb["id"]).owner == "a", 30, "controller a to claim")
    survivor = site.spawn(site.config(pg_url, controller_id="b", lease=2.0))
    assert doomed.wait(60) == -signal.SIGKILL
    done = api.wait(lb["id"], timeout=60)
    assert done["provisioning_status"] == "ACTIVE", done.get("status_reason")
    with sessions() as session:
        steps = {s.name: s.owner for s in session.scalars(select(models.FlowStep).where(
            models.FlowStep.flow_id == _flow(sessions, lb["id"]).id))}
    assert steps["boot_amphorae"] == "a" and steps["push_config"] == steps["finish"] == "b"
    assert pending_objects(sessions) == []
    assert site.served_by(done["vip_address"], {"m1", "m2"}) == {"m1", "m2"}

    # both controllers alive: work is shared, each flow run exactly once
    other = site.spawn(site.config(pg_url, controller_id="c", lease=2.0))
    lbs = [api.create_load_balancer(listeners=[_listener(site)]) for _ in range(2)]
    for item in lbs:
        assert api.wait(item["id"], timeout=60)["provisioning_status"] == "ACTIVE"
    for item in [lb, *lbs]:
        api.delete_load_balancer(item["id"], cascade=True)
    for item in [lb, *lbs]:
        api.wait_deleted(item["id"])
    for proc in (survivor, other):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_unreachable_amphora_fails_update_within_budget(site: Site, tmp_path: Path) -> None:
    attempts, seconds, agent_timeout = 3, 4.0, 1.0
    with site.service(f"sqlite:///{tmp_path}/state.db", attempts=attempts, seconds=seconds,
                      agent_timeout=agent_timeout) as service:
        api = service.api
        lb = api.create_load_balancer(listeners=[_listener(site)])
        lb = api.wait(lb["id"], timeout=60)
        assert lb["provisioning_status"] == "ACTIVE"
        (amphora,) = api.amphorae(lb["id"])
        mgmt_link = amphora["compute_data"]["links"][0]
        with netns.entered(site.fabric.namespace), IPRoute() as ipr:  # cut the management NIC
            ipr.link("set", index=ipr.link_lookup(ifname=mgmt_link)[0], state="down")
        listener_id = lb["listeners"][0]["id"]
        start = time.monotonic()
        api.update_listener(listener_id, connection_limit=100)
        failed = api.wait(lb["id"], timeout=60)
        elapsed = time.monotonic() - start
        assert failed["provisioning_status"] == "ERROR"
        assert "push_config" in failed["status_reason"]
        assert "unreachable" in failed["status_reason"]
        listener = api.get_listener(listener_id)
        assert listener["provisioning_status"] == "ERROR"
        assert listener["status_reason"] == failed["status_reason"]
        # the budget bounds the failure: seconds plus one agent timeout in flight
        assert elapsed < seconds + agent_timeout + 3
        assert pending_objects(service.sessions) == []
        api.delete_load_balancer(lb["id"], cascade=True)  # an LB in ERROR can be deleted
        api.wait_deleted(lb["id"])


def test_sigterm_mid_flow_exits_cleanly_and_leaves_it_resumable(site: Site,
                                                                tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    sessions = db.open_store(url)
    api = Controller(sessions, LocalImage())
    config = site.config(url, controller_id="c1", lease=30.0)
    first = site.spawn(config, pause_at="lb_create:push_config")
    lb = api.create_load_balancer(listeners=[_listener(site)])

    def push_config_running() -> bool:
        with sessions() as session:
            return any(s.name == "push_config" and s.state == "RUNNING"
                       for s in session.scalars(select(models.FlowStep)))
    wait_for(push_config_running, 60, "the create to reach push_config")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    flow = _flow(sessions, lb["id"])
    assert (flow.state, flow.step, flow.owner, flow.lease_expires) == ("RUNNING", 2, None, None)
    assert api.get_load_balancer(lb["id"])["provisioning_status"] == "PENDING_CREATE"

    other = site.spawn(site.config(url, controller_id="c2", lease=30.0))
    done = api.wait(lb["id"], timeout=20)  # no lease to wait out: it was released
    assert done["provisioning_status"] == "ACTIVE", done.get("status_reason")
    assert site.served_by(done["vip_address"], {"m1", "m2"}) == {"m1", "m2"}
    api.delete_load_balancer(lb["id"], cascade=True)
    api.wait_deleted(lb["id"])
    other.send_signal(signal.SIGTERM)
    assert other.wait(30) == 0
