"""An ACTIVE_STANDBY load balancer created by the controller tracks its
HAProxy: SIGKILL of the MASTER's HAProxy moves the VIP to the BACKUP and
traffic keeps flowing through it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.integration.controller.conftest import Site, wait_for


def _holds_vip(amphora: dict[str, Any], vip: str) -> bool:
    out = subprocess.run(["ip", "-n", amphora["compute_data"]["haproxy_namespace"], "-o",
                          "addr", "show"], capture_output=True, text=True, check=True).stdout
    return f" {vip}/" in out


def test_master_haproxy_killed_moves_the_vip(site: Site, tmp_path: Path) -> None:
    m1, _ = site.members
    with site.service(f"sqlite:///{tmp_path}/state.db") as service:
        api = service.api
        profile = api.create_flavor_profile("as", {"loadbalancer_topology": "ACTIVE_STANDBY"})
        flavor = api.create_flavor("as", profile["id"])
        lb = api.create_load_balancer(name="web", flavor_id=flavor["id"], listeners=[{
            "protocol": "HTTP", "protocol_port": 80, "name": "http",
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": str(m1.ipv4), "protocol_port": 80}]}}])
        lb = api.wait(lb["id"], timeout=60)
        assert lb["provisioning_status"] == "ACTIVE"
        vip = lb["vip_address"]
        assert site.served_by(vip, {"m1"}) == {"m1"}
        roles = {a["role"]: a for a in api.amphorae(lb["id"])}
        master, backup = roles["MASTER"], roles["BACKUP"]
        wait_for(lambda: _holds_vip(master, vip) and not _holds_vip(backup, vip), 30,
                 "the VIP on the MASTER only")

        pid_file = Path(master["compute_data"]["root"]) / "lib" / lb["id"] / "haproxy.pid"
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)

        wait_for(lambda: _holds_vip(backup, vip), 15, "the VIP on the BACKUP")
        assert site.served_by(vip, {"m1"}) == {"m1"}
        api.delete_load_balancer(lb["id"], cascade=True)
        api.wait_deleted(lb["id"])
