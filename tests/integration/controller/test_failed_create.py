"""A create that fails leaves the LB in ERROR with the reason and removes the
compute it made (namespaces, agents, files, addresses); with
``keep_failed_amphorae`` the amphorae stay for debugging until the LB is deleted."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from controller_stub.compute import nsutil
from controller_stub.controller.errors import Conflict
from tests.integration.controller.conftest import Site

# A certificate reference the store does not hold: push_config fails after the
# pair has booted and plugged its VIP, so there is compute to clean up.
MISSING = "local://certificates/" + "0" * 32


def _create_failing(service, site: Site) -> dict:  # type: ignore[no-untyped-def,type-arg]
    profile = service.api.create_flavor_profile("pair", {
        "loadbalancer_topology": "ACTIVE_STANDBY"})
    flavor = service.api.create_flavor("pair", profile["id"])
    lb = service.api.create_load_balancer(flavor_id=flavor["id"], listeners=[{
        "protocol": "TERMINATED_HTTPS", "protocol_port": 443,
        "default_tls_container_ref": MISSING,
        "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": [
            {"address": str(site.members[0].ipv4), "protocol_port": 80}]}}])
    return service.api.wait(lb["id"], timeout=60)


def _leftovers(site: Site) -> dict[str, list[str]]:
    allocations = site.workdir / "allocations.json"
    held = json.loads(allocations.read_text()) if allocations.exists() else {}
    return {
        "namespaces": nsutil.listed(f"{site.fabric.prefix}-a"),
        "roots": sorted(p.name for p in site.workdir.glob("a*") if p.is_dir()),
        "processes": [str(p.pid) for p in psutil.process_iter(["cmdline"])
                      if any(f"{site.workdir}/a" in arg for arg in p.info["cmdline"] or [])],
        "addresses": sorted(h for used in held.values() for h in used.values()),
    }


def test_failed_create_removes_its_compute(site: Site, tmp_path: Path) -> None:
    with site.service(f"sqlite:///{tmp_path}/state.db", attempts=1) as service:
        lb = _create_failing(service, site)
        assert lb["provisioning_status"] == "ERROR"
        assert lb["status_reason"].startswith("push_config: CertificateNotFound")
        assert service.api.amphorae(lb["id"]) == []
        assert lb["vip_address"] is None
        assert _leftovers(site) == {"namespaces": [], "roots": [], "processes": [],
                                    "addresses": []}
        listener = service.api.status_tree(lb["id"])["statuses"]["loadbalancer"]["listeners"][0]
        with pytest.raises(Conflict, match="has no amphorae"):
            service.api.update_listener(listener["id"], connection_limit=10)
        service.api.delete_load_balancer(lb["id"], cascade=True)
        service.api.wait_deleted(lb["id"])


def test_failed_create_keeps_amphorae_when_asked(site: Site, tmp_path: Path) -> None:
    with site.service(f"sqlite:///{tmp_path}/state.db", attempts=1,
                      keep_failed=True) as service:
        lb = _create_failing(service, site)
        assert lb["provisioning_status"] == "ERROR"
        amphorae = service.api.amphorae(lb["id"])
        assert sorted(a["role"] for a in amphorae) == ["BACKUP", "MASTER"]
        kept = _leftovers(site)
        assert sorted(kept["namespaces"]) == sorted(
            a["compute_data"][key] for a in amphorae
            for key in ("namespace", "haproxy_namespace"))
        assert len(kept["roots"]) == 2
        service.api.delete_load_balancer(lb["id"], cascade=True)
        service.api.wait_deleted(lb["id"])
        assert _leftovers(site) == {"namespaces": [], "roots": [], "processes": [],
                                    "addresses": []}
