"""Health monitors, a second pool, L7 policies and rules, and deleting them one
by one through the controller on the fabric (the lb_update flows)."""

from __future__ import annotations

from pathlib import Path

from controller_stub import haproxy_cli
from tests.integration.controller.conftest import Site, pending_objects


def test_l7_redirect_members_of_redirect_pool_and_piecewise_delete(site: Site,
                                                                   tmp_path: Path) -> None:
    m1, m2 = site.members
    with site.service(f"sqlite:///{tmp_path}/state.db") as service:
        api = service.api
        lb = api.create_load_balancer(listeners=[{
            "protocol": "HTTP", "protocol_port": 80,
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": str(m1.ipv4), "protocol_port": 80}],
                             "healthmonitor": {"type": "HTTP", "delay": 1, "timeout": 1,
                                               "max_retries": 1, "url_path": "/health"}}}])
        lb = api.wait(lb["id"], timeout=60)
        assert lb["provisioning_status"] == "ACTIVE", lb.get("status_reason")
        vip, listener_id = lb["vip_address"], lb["listeners"][0]["id"]
        default_pool = api.get_pool(lb["pools"][0]["id"])
        member = api.get_member(default_pool["members"][0]["id"])
        assert member["operating_status"] == "OFFLINE"  # monitored: health manager decides
        assert site.served_by(vip, {"m1"}) == {"m1"}

        second = api.create_pool(lb["id"], protocol="HTTP", lb_algorithm="ROUND_ROBIN",
                                 members=[{"address": str(m2.ipv4), "protocol_port": 80}])
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        policy = api.create_l7policy(listener_id, action="REDIRECT_TO_POOL",
                                     redirect_pool_id=second["id"], position=1,
                                     rules=[{"type": "PATH", "compare_type": "STARTS_WITH",
                                             "value": "/two"}])
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert site.served_by(vip, {"m2"}, path="/two/x") == {"m2"}
        assert site.served_by(vip, {"m1"}) == {"m1"}

        (amphora,) = api.amphorae(lb["id"])
        lb_dir = Path(amphora["compute_data"]["root"]) / "lib" / lb["id"]
        reloads = haproxy_cli.reloads(lb_dir / "master.sock")
        api.create_member(second["id"], address=str(m1.ipv4), protocol_port=80)
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert site.served_by(vip, {"m1", "m2"}, path="/two") == {"m1", "m2"}
        assert haproxy_cli.reloads(lb_dir / "master.sock") == reloads

        api.delete_l7policy(policy["id"])
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert site.served_by(vip, {"m1"}, path="/two") == {"m1"}
        api.delete_health_monitor(default_pool["healthmonitor_id"])
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert api.get_pool(default_pool["id"])["healthmonitor_id"] is None
        assert "check" not in (lb_dir / "haproxy.cfg").read_text().split("backend", 1)[1]
        api.delete_pool(second["id"])
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        api.delete_listener(listener_id)
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert not (lb_dir / "haproxy.cfg").exists()
        api.delete_pool(default_pool["id"])
        assert api.wait(lb["id"])["provisioning_status"] == "ACTIVE"
        assert pending_objects(service.sessions) == []
        api.delete_load_balancer(lb["id"])  # nothing left below it: no cascade needed
        api.wait_deleted(lb["id"])
