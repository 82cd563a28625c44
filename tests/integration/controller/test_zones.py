"""ACTIVE_STANDBY anti-affinity on the local fabric: a flavor naming two
availability zones puts MASTER and BACKUP in different compute zones, recorded
on the amphora rows; a zone the fabric does not have fails the create."""

from __future__ import annotations

from pathlib import Path

from controller_stub.controller.daemon import Service
from tests.integration.controller.conftest import Site


def _flavor(service: Service, zones: dict[str, str], pair: list[str]) -> str:
    api = service.api
    for name, compute_zone in zones.items():
        profile = api.create_availability_zone_profile(name, {"compute_zone": compute_zone})
        api.create_availability_zone(name, profile["id"])
    profile = api.create_flavor_profile("spread", {"loadbalancer_topology": "ACTIVE_STANDBY",
                                                   "availability_zones": pair})
    return api.create_flavor("spread", profile["id"])["id"]


LISTENER = {"protocol": "HTTP", "protocol_port": 80,
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": []}}


def test_pair_spread_across_zones(site: Site, tmp_path: Path) -> None:
    m1, _ = site.members
    with site.service(f"sqlite:///{tmp_path}/state.db", zones="rack-a, rack-b") as service:
        flavor_id = _flavor(service, {"az-a": "rack-a", "az-b": "rack-b"}, ["az-a", "az-b"])
        listener = {**LISTENER, "default_pool": {**LISTENER["default_pool"], "members": [
            {"address": str(m1.ipv4), "protocol_port": 80}]}}
        lb = service.api.create_load_balancer(flavor_id=flavor_id, listeners=[listener])
        lb = service.api.wait(lb["id"], timeout=60)
        assert lb["provisioning_status"] == "ACTIVE", lb.get("status_reason")
        placed = {a["role"]: (a["availability_zone"], a["compute_zone"])
                  for a in service.api.amphorae(lb["id"])}
        assert placed == {"MASTER": ("az-a", "rack-a"), "BACKUP": ("az-b", "rack-b")}
        assert site.served_by(lb["vip_address"], {"m1"}) == {"m1"}
        service.api.delete_load_balancer(lb["id"], cascade=True)
        service.api.wait_deleted(lb["id"])


def test_zone_the_fabric_lacks_fails_the_create(site: Site, tmp_path: Path) -> None:
    with site.service(f"sqlite:///{tmp_path}/state.db", zones="rack-a, rack-b",
                      attempts=1) as service:
        flavor_id = _flavor(service, {"az-a": "rack-a", "az-x": "rack-x"}, ["az-a", "az-x"])
        lb = service.api.create_load_balancer(flavor_id=flavor_id)
        lb = service.api.wait(lb["id"], timeout=60)
        assert lb["provisioning_status"] == "ERROR"
        assert "compute zone 'rack-x' is not one of this fabric's zones" in lb["status_reason"]
        service.api.delete_load_balancer(lb["id"], cascade=True)
        service.api.wait_deleted(lb["id"])
