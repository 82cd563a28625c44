"""End to end through the controller's Python API on the local fabric:
create → traffic → member add/remove without a reload → listener update
with a reload → cascade delete leaves no namespace, process, file or row."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
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


@pytest.mark.parametrize("topology", ["SINGLE", "ACTIVE_STANDBY"])
def test_lb_lifecycle(site: Site, tmp_path: Path, topology: str) -> None:
    m1, m2 = site.members
    with site.service(f"sqlite:///{tmp_path}/state.db") as service:
        api = service.api
        profile = api.create_flavor_profile(topology, {"loadbalancer_topology": topology})
        flavor = api.create_flavor(topology, profile["id"])
        lb = api.create_load_balancer(name="web", flavor_id=flavor["id"], listeners=[{
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

        amphorae = api.amphorae(lb["id"])
        assert sorted(a["role"] for a in amphorae) == (
            ["STANDALONE"] if topology == "SINGLE" else ["BACKUP", "MASTER"])
        roots = [Path(a["compute_data"]["root"]) for a in amphorae]
        masters = [root / "lib" / lb["id"] / "master.sock" for root in roots]
        reloads = [haproxy_cli.reloads(master) for master in masters]

        added = api.create_member(pool["id"], address=str(m2.ipv4), protocol_port=80)
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert api.get_member(added["id"])["provisioning_status"] == "ACTIVE"
        assert site.served_by(vip, {"m1", "m2"}) == {"m1", "m2"}
        api.delete_member(pool["members"][0]["id"])
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert site.served_by(vip, {"m2"}) == {"m2"}
        # members changed at runtime on every amphora
        assert [haproxy_cli.reloads(master) for master in masters] == reloads

        api.update_listener(listener["id"], connection_limit=1234)
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert api.get_listener(listener["id"])["connection_limit"] == 1234
        after = [haproxy_cli.reloads(master) for master in masters]
        assert all(a > b for a, b in zip(after, reloads, strict=True))
        for root in roots:
            rendered = (root / "lib" / lb["id"] / "haproxy.cfg").read_text()
            assert "maxconn 1234" in rendered
            assert "option httplog" in rendered  # request logs by default
        assert site.served_by(vip, {"m2"}) == {"m2"}
        assert pending_objects(service.sessions) == []

        namespaces = [a["compute_data"][key] for a in amphorae
                      for key in ("namespace", "haproxy_namespace")]
        configs = [str(a["compute_data"]["config_file"]) for a in amphorae]
        pids = [p.pid for p in psutil.process_iter(["cmdline"])
                if any(c in " ".join(p.info["cmdline"] or []) for c in configs)]
        assert len(pids) >= len(amphorae), "the amphorae's agents should be running"
        api.delete_load_balancer(lb["id"], cascade=True)
        api.wait_deleted(lb["id"])
        assert not any(n in site.fabric.leftovers() for n in namespaces)
        assert not [pid for pid in pids if psutil.pid_exists(pid) and
                    psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert not any(root.exists() for root in roots)
        assert _rows(service.sessions) == {}


def test_connection_logging_off_renders_no_request_logs(site: Site, tmp_path: Path) -> None:
    """``[haproxy_amphora] connection_logging = false`` (Octavia's option):
    the amphora's HAProxy logs no requests and still serves."""
    m1 = site.members[0]
    with site.service(f"sqlite:///{tmp_path}/state.db",
                      extra="[haproxy_amphora]\nconnection_logging = false\n") as service:
        api = service.api
        lb = api.create_load_balancer(name="quiet", listeners=[{
            "protocol": "HTTP", "protocol_port": 80, "name": "http",
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": str(m1.ipv4), "protocol_port": 80}]}}])
        lb = api.wait(lb["id"], timeout=60)
        assert lb["provisioning_status"] == "ACTIVE"
        assert site.served_by(lb["vip_address"], {"m1"}) == {"m1"}
        (amphora,) = api.amphorae(lb["id"])
        config = (Path(amphora["compute_data"]["root"]) / "lib" / lb["id"] /
                  "haproxy.cfg").read_text()
        defaults = config.split("\ndefaults\n", 1)[1].split("\nfrontend ", 1)[0]
        assert "    no log\n" in defaults
        assert "httplog" not in config and "log-format" not in config
        api.delete_load_balancer(lb["id"], cascade=True)
        api.wait_deleted(lb["id"])
