"""End to end through the controller's Python API on the local fabric:
create → traffic → member add/remove without a reload → listener update
with a reload → cascade delete leaves no namespace, process, file or row."""

from __future__ import annotations

from pathlib import Path

import psutil
from sqlalchemy import func, select

from controller_stub import haproxy_cli
from controller_stub.controller import models
from tests.integration.controller.conftest import Site, pending_objects


def _rows(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    counts = {}
    with sessions() as session:
        for model in (models.LoadBalancer, models.Listener, models.Pool, models.Member,
                      models.HealthMonitor, models.L7Policy, models.L7Rule, models.Amphora,
                      models.Flow, models.FlowStep):
            counts[model.__tablename__] = session.scalar(
                select(func.count()).select_from(model))
    return {k: v for k, v in counts.items() if v}


def test_single_lb_lifecycle(site: Site, tmp_path: Path) -> None:
    m1, m2 = site.members
    with site.service(f"sqlite:///{tmp_path}/state.db") as service:
        api = service.api
        lb = api.create_load_balancer(name="web", listeners=[{
            "protocol": "HTTP", "protocol_port": 80, "name": "http",
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": str(m1.ipv4), "protocol_port": 80}]}}])
        lb = api.wait(lb["id"], timeout=60)
        assert (lb["provisioning_status"], lb["operating_status"]) == ("ACTIVE", "ONLINE")
        tree = api.status_tree(lb["id"])["statuses"]["loadbalancer"]
        listener = tree["listeners"][0]
        pool = listener["pools"][0]
        assert listener["provisioning_status"] == pool["provisioning_status"] == "ACTIVE"
        assert pool["members"][0]["operating_status"] == "NO_MONITOR"
        vip = lb["vip_address"]
        assert site.served_by(vip, {"m1"}) == {"m1"}

        (amphora,) = api.amphorae(lb["id"])
        root = Path(amphora["compute_data"]["root"])
        master = root / "lib" / lb["id"] / "master.sock"
        reloads = haproxy_cli.reloads(master)

        added = api.create_member(pool["id"], address=str(m2.ipv4), protocol_port=80)
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert api.get_member(added["id"])["provisioning_status"] == "ACTIVE"
        assert site.served_by(vip, {"m1", "m2"}) == {"m1", "m2"}
        api.delete_member(pool["members"][0]["id"])
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert site.served_by(vip, {"m2"}) == {"m2"}
        assert haproxy_cli.reloads(master) == reloads  # members changed at runtime

        api.update_listener(listener["id"], connection_limit=1234)
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert api.get_listener(listener["id"])["connection_limit"] == 1234
        assert haproxy_cli.reloads(master) > reloads
        assert "maxconn 1234" in (root / "lib" / lb["id"] / "haproxy.cfg").read_text()
        assert site.served_by(vip, {"m2"}) == {"m2"}
        assert pending_objects(service.sessions) == []

        namespaces = [amphora["compute_data"]["namespace"],
                      amphora["compute_data"]["haproxy_namespace"]]
        pids = [p.pid for p in psutil.process_iter(["cmdline"])
                if str(amphora["compute_data"]["config_file"]) in " ".join(
                    p.info["cmdline"] or [])]
        assert pids, "the amphora's agent should be running"
        api.delete_load_balancer(lb["id"], cascade=True)
        api.wait_deleted(lb["id"])
        assert not any(n in site.fabric.leftovers() for n in namespaces)
        assert not [pid for pid in pids if psutil.pid_exists(pid) and
                    psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert not root.exists()
        assert _rows(service.sessions) == {}
