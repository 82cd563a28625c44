"""Octavia serves every ``lbaas`` collection at ``/v2/<collection>`` too; so do we."""

from __future__ import annotations

from pathlib import Path

from tests.unit.controller.rest_helpers import VIP_NETWORK, Api


def test_collections_answer_without_the_lbaas_segment(tmp_path: Path) -> None:
    api = Api(tmp_path)
    r = api.client.post("/v2/loadbalancers", json={"loadbalancer": {
        "name": "short", "vip_network_id": VIP_NETWORK}})
    assert r.status_code == 201, r.json
    lb = r.json["loadbalancer"]
    for root in ("/v2", "/v2.0"):
        short = api.client.get(f"{root}/loadbalancers/{lb['id']}")
        full = api.client.get(f"{root}/lbaas/loadbalancers/{lb['id']}")
        assert short.status_code == full.status_code == 200
        assert short.json == full.json
        listed = api.client.get(f"{root}/loadbalancers?name=short")
        assert [x["id"] for x in listed.json["loadbalancers"]] == [lb["id"]]
    for collection in ("listeners", "pools", "healthmonitors", "l7policies", "quotas",
                       "providers", "flavors", "flavorprofiles", "availabilityzones",
                       "availabilityzoneprofiles"):
        short = api.client.get(f"/v2/{collection}")
        full = api.client.get(f"/v2/lbaas/{collection}")
        assert (short.status_code, short.json) == (full.status_code, full.json), collection


def test_only_whole_collection_names_are_aliased(tmp_path: Path) -> None:
    api = Api(tmp_path)
    for path in ("/v2/loadbalancersx", "/v2/lbaas/lbaas/loadbalancers", "/v3/loadbalancers",
                 "/v2/amphorae"):
        r = api.client.get(path)
        assert r.status_code == 404, path
        assert set(r.json) == {"faultcode", "faultstring", "debuginfo"}, r.json
    # the operator's amphorae stay where Octavia has them (admin only: routed, refused)
    assert api.client.get("/v2/octavia/amphorae").status_code == 403
