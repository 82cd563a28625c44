"""Upgrade matrix: the controller of this tree drives each agent an amphora
may run through a load balancer's whole life on the local fabric: create,
traffic, listener update, member change, failover, delete.

Rows: this tree's agent; the agent of the previous release, built from its
tag or recorded commit into its own virtualenv (packaging/releases.toml;
a clone without that commit fails here, it never skips); OpenStack
Octavia's amphora agent from .venv-octavia (version-3 heartbeats with the
shared key, members changed by a config push). The promise this checks is
in docs/upgrades.md.
"""

from __future__ import annotations

import configparser
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controller_stub.compute import nsutil
from controller_stub.controller import config as config_mod
from controller_stub.controller import models
from controller_stub.controller.daemon import Service
from tests.integration.controller.conftest import Site, pending_objects, wait_for
from tests.support import releases

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[3]
MASTER_KEY = "upgrade-master-key-0123456789"
OCTAVIA_VENV = REPO / ".venv-octavia"  # make .venv-octavia


def _current_version() -> str:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return parser["metadata"]["version"]


def _agent(row: str) -> tuple[dict[str, str], dict[str, Any]]:
    """([compute] options for the row's agent, what the controller should find it is)."""
    if row == "current":
        return {}, {"kind": "amphora", "api_version": "1.0",
                    "agent_version": _current_version(),
                    "extensions": ["metrics", "runtime-members"]}
    if row == "octavia":
        return {"agent_venv": str(OCTAVIA_VENV), "agent_kind": "octavia"}, {
            "kind": "octavia", "api_version": "1.0", "agent_version": None, "extensions": []}
    tag, recorded = releases.previous_release()
    built = releases.build(tag, releases.resolve(tag, recorded))
    # agents before 0.2.0 report no agent_version; the venv holds that release
    assert built.version == "0.1.0"
    return {"agent_venv": str(built.venv), "agent_kind": "amphora"}, {
        "kind": "amphora", "api_version": "1.0", "agent_version": None,
        "extensions": ["metrics", "runtime-members"]}


def _service(site: Site, tmp_path: Path, compute: dict[str, str]) -> Service:
    path = site.config(f"sqlite:///{tmp_path}/state.db", attempts=3, seconds=40.0,
                       agent_timeout=15.0, lease=20.0)
    text = path.read_text(encoding="utf-8").replace(
        "[compute]\n", "[compute]\n" + "".join(f"{k} = {v}\n" for k, v in compute.items()))
    path.write_text(text + f"[health_manager]\nenabled = true\nbind_port = 0\n"
                    f"heartbeat_key = {MASTER_KEY}\nheartbeat_interval = 1\n"
                    f"heartbeat_timeout = 4\ncheck_interval = 0.5\n"
                    f"accept_v3_heartbeats = true\n", encoding="utf-8")
    return Service(config_mod.load(path))


def _info(service: Service, amphora: dict[str, Any]) -> dict[str, Any]:
    with service.compute.client(amphora["id"], amphora["compute_data"], retries=2,
                                retry_interval=0.2, timeout=5.0) as client:
        return client.info()


def _heard(service: Service, ids: list[str]) -> bool:
    with service.sessions() as session:
        return len(list(session.scalars(select(models.AmphoraHealth.amphora_id).where(
            models.AmphoraHealth.amphora_id.in_(ids))))) == len(ids)


def _kill(amphora: dict[str, Any]) -> None:
    """The amphora dies: its processes SIGKILLed, its namespaces gone."""
    data = amphora["compute_data"]
    for namespace in (data["haproxy_namespace"], data["namespace"]):
        for pid in nsutil.pids_in(namespace):
            os.kill(pid, signal.SIGKILL)
        nsutil.delete(namespace)


def _replaced(service: Service, lb_id: str, dead: str, count: int) -> bool:
    ids = [a["id"] for a in service.api.amphorae(lb_id)]
    return (dead not in ids and len(ids) == count
            and service.api.get_load_balancer(lb_id)["provisioning_status"] == "ACTIVE")


@pytest.mark.parametrize(("row", "topology"), [
    ("current", "SINGLE"), ("previous_release", "SINGLE"),
    ("previous_release", "ACTIVE_STANDBY"), ("octavia", "SINGLE"), ("octavia", "ACTIVE_STANDBY")])
def test_lifecycle_against_agent(site: Site, tmp_path: Path, row: str, topology: str) -> None:
    compute, agent = _agent(row)
    m1, m2 = site.members
    with _service(site, tmp_path, compute) as service:
        api = service.api
        profile = api.create_flavor_profile(topology, {"loadbalancer_topology": topology})
        flavor = api.create_flavor(topology, profile["id"])
        lb = api.wait(api.create_load_balancer(name="web", flavor_id=flavor["id"], listeners=[{
            "protocol": "HTTP", "protocol_port": 80, "name": "http",
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": str(m1.ipv4), "protocol_port": 80}]}}],
        )["id"], timeout=90)
        assert (lb["provisioning_status"], lb["operating_status"]) == ("ACTIVE", "ONLINE"), lb
        vip = lb["vip_address"]
        assert site.served_by(vip, {"m1"}) == {"m1"}
        amphorae = api.amphorae(lb["id"])
        assert len(amphorae) == (1 if topology == "SINGLE" else 2)
        for amphora in amphorae:
            assert _info(service, amphora).get("agent_version") == agent["agent_version"]
            assert amphora["compute_data"]["agent"] == agent

        listener = api.status_tree(lb["id"])["statuses"]["loadbalancer"]["listeners"][0]
        api.update_listener(listener["id"], connection_limit=1234)
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        for amphora in amphorae:
            root = Path(amphora["compute_data"]["root"])
            assert "maxconn 1234" in (root / "lib" / lb["id"] / "haproxy.cfg").read_text()

        pool = listener["pools"][0]
        api.create_member(pool["id"], address=str(m2.ipv4), protocol_port=80)
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert site.served_by(vip, {"m1", "m2"}) == {"m1", "m2"}
        api.delete_member(pool["members"][0]["id"])
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert site.served_by(vip, {"m2"}) == {"m2"}

        # failover: the health manager hears the agents, misses the dead one, replaces it
        ids = [a["id"] for a in amphorae]
        wait_for(lambda: _heard(service, ids), 20, "the agents' heartbeats")
        victim = next(a for a in amphorae if a["role"] in ("MASTER", "STANDALONE"))
        _kill(victim)
        wait_for(lambda: _replaced(service, lb["id"], victim["id"], len(amphorae)), 90,
                 "the dead amphora replaced")
        assert service.health is not None and service.health.failovers_started >= 1
        after = api.amphorae(lb["id"])
        [replacement] = [a for a in after if a["id"] not in ids]
        assert _info(service, replacement).get("agent_version") == agent["agent_version"]
        assert replacement["compute_data"]["agent"] == agent
        assert site.served_by(vip, {"m2"}) == {"m2"}
        wait_for(lambda: _heard(service, [a["id"] for a in after]), 20,
                 "heartbeats from the replacement")
        assert pending_objects(service.sessions) == []

        api.delete_load_balancer(lb["id"], cascade=True)
        api.wait_deleted(lb["id"])
        for amphora in after:
            assert not nsutil.listed(amphora["compute_data"]["namespace"])
            assert not Path(amphora["compute_data"]["root"]).exists()
