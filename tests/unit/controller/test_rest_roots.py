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


def test_links_use_the_configured_public_url(tmp_path: Path) -> None:
    """Behind a proxy the request's own URL is not the one clients use ([api] base_uri)."""
    api = Api(tmp_path, base_uri="https://lb.example.com:9876/")
    api.lb("one")
    api.lb("two")
    page = api.client.get("/v2/loadbalancers?limit=1")
    (link,) = page.json["loadbalancers_links"]
    first = page.json["loadbalancers"][0]["id"]
    assert link == {"rel": "next", "href": "https://lb.example.com:9876/v2/lbaas/loadbalancers"
                                            f"?limit=1&marker={first}"}
    versions = api.client.get("/").json["versions"]
    assert {v["links"][0]["href"] for v in versions} == {"https://lb.example.com:9876/v2"}
    # without it, the request's own URL
    (tmp_path / "plain").mkdir()
    plain = Api(tmp_path / "plain")
    plain.lb("one")
    plain.lb("two")
    (link,) = plain.client.get("/v2/lbaas/loadbalancers?limit=1").json["loadbalancers_links"]
    assert link["href"].startswith("http://localhost/v2/lbaas/loadbalancers?limit=1&marker=")
