"""L7 policies' argument rules, quotas and the catalog over the REST app (no workers):
Octavia's answers for each case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.controller.rest_helpers import Api

ADMIN = {"X-Roles": "admin"}
POLICIES = "/v2/lbaas/l7policies"


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return Api(tmp_path)


@pytest.fixture
def listener(api: Api) -> dict[str, str]:
    lb = api.lb()
    api.settle()
    r = api.client.post("/v2/lbaas/listeners", json={"listener": {
        "loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 80}})
    assert r.status_code == 201, r.json
    api.settle()
    r = api.client.post("/v2/lbaas/pools", json={"pool": {
        "loadbalancer_id": lb["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})
    assert r.status_code == 201, r.json
    api.settle()
    return {"pool": r.json["pool"]["id"],
            "listener": api.client.get("/v2/lbaas/listeners").json["listeners"][0]["id"]}


def _policy(api: Api, listener: dict[str, Any], **body: Any) -> Any:
    response = api.client.post(POLICIES, json={"l7policy": {
        "listener_id": listener["listener"], **body}})
    api.settle()
    return response


@pytest.mark.parametrize(("body", "expected"), [
    ({"action": "REJECT", "redirect_url": "http://example.com/"},
     {"action": "REJECT", "redirect_url": None, "redirect_http_code": None}),
    ({"action": "REDIRECT_PREFIX", "redirect_prefix": "https://example.com"},
     {"action": "REDIRECT_PREFIX", "redirect_http_code": 302}),
    ({"action": "REDIRECT_TO_URL", "redirect_url": "http://example.com/",
      "redirect_http_code": 308}, {"action": "REDIRECT_TO_URL", "redirect_http_code": 308}),
])
def test_policy_actions_and_targets(api: Api, listener: dict[str, Any], body: dict[str, Any],
                                    expected: dict[str, Any]) -> None:
    r = _policy(api, listener, **body)
    assert r.status_code == 201, r.json
    assert {k: r.json["l7policy"][k] for k in expected} == expected


def test_policy_with_inline_rules(api: Api, listener: dict[str, Any]) -> None:
    r = _policy(api, listener, action="REJECT", rules=[
        {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/x"},
        {"type": "HEADER", "compare_type": "EQUAL_TO", "key": "X-A", "value": "1",
         "invert": True}])
    assert r.status_code == 201, r.json
    policy = r.json["l7policy"]["id"]
    rules = api.client.get(f"{POLICIES}/{policy}/rules").json["rules"]
    assert sorted((x["type"], x["key"], x["invert"], x["admin_state_up"]) for x in rules) == [
        ("HEADER", "X-A", True, True), ("PATH", None, False, True)]


def test_policy_refusals(api: Api, listener: dict[str, Any]) -> None:
    cases = [
        ({"action": "REDIRECT_TO_POOL"},
         "Invalid L7 Policy arguments: redirect_pool_id or redirect_pool must not be None"),
        ({"action": "REDIRECT_PREFIX", "redirect_prefix": "http://example.com",
          "redirect_pool_id": listener["pool"]},
         "Invalid L7 Policy arguments: Cannot specify redirect_pool_id and redirect_url or "
         "redirect_prefix at the same time"),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "not a url"},
         "Invalid input for field/attribute l7policy.redirect_url. Value: 'not a url'."),
        ({"action": "REJECT", "redirect_http_code": 304},
         "Invalid input for field/attribute l7policy.redirect_http_code. Value: '304'."),
        ({"action": "DROP"}, "Invalid input for field/attribute l7policy.action."),
        ({"action": "REJECT", "tags": ["a", "t" * 256]},
         "Invalid input for field/attribute l7policy.tags.1."),
    ]
    for body, fault in cases:
        r = _policy(api, listener, **body)
        assert r.status_code == 400, (body, r.json)
        assert r.json["faultstring"].startswith(fault), (body, r.json)


def test_quota_refusal_names_the_resource(api: Api, listener: dict[str, Any]) -> None:
    r = api.client.put("/v2/lbaas/quotas/p1", json={"quota": {"l7policy": 1, "l7rule": 0}},
                       headers=ADMIN)
    assert r.status_code == 202 and r.json["quota"]["l7policy"] == 1
    assert _policy(api, listener, action="REJECT").status_code == 201
    r = _policy(api, listener, action="REJECT")
    assert (r.status_code, r.json["faultstring"]) == (
        403, "Quota has been met for resources: L7 Policy")
    policy = api.client.get(POLICIES).json["l7policies"][0]["id"]
    r = api.client.post(f"{POLICIES}/{policy}/rules", json={"rule": {
        "type": "PATH", "compare_type": "EQUAL_TO", "value": "/"}})
    assert (r.status_code, r.json["faultstring"]) == (
        403, "Quota has been met for resources: L7 Rule")
    assert api.client.get("/v2/lbaas/quotas/p1/default").json["quota"]["l7policy"] == -1
    assert api.client.delete("/v2/lbaas/quotas/p1", headers=ADMIN).status_code == 202
    assert api.client.get("/v2/lbaas/quotas/p1").json["quota"]["l7rule"] == -1


def test_catalog_names_are_unique_and_profiles_checked(api: Api) -> None:
    body = {"flavorprofile": {"name": "fp", "provider_name": "octavia",
                              "flavor_data": '{"haproxy_threads": 2}'}}
    r = api.client.post("/v2/lbaas/flavorprofiles", json=body, headers=ADMIN)
    assert r.status_code == 201 and r.json["flavorprofile"]["provider_name"] == "octavia"
    r = api.client.post("/v2/lbaas/flavorprofiles", json=body, headers=ADMIN)
    assert (r.status_code, r.json["faultstring"]) == (
        409, "A flavor profile of fp already exists.")
    r = api.client.post("/v2/lbaas/flavorprofiles", headers=ADMIN, json={"flavorprofile": {
        "name": "fp2", "provider_name": "amphora", "flavor_data": '{"haproxy_threads": 0}'}})
    assert (r.status_code, r.json["faultstring"]) == (
        400, "Validation failure: haproxy_threads: must be an integer 1..64")
    r = api.client.get("/v2/lbaas/providers/nope/flavor_capabilities")
    assert (r.status_code, r.json["faultstring"]) == (400, "Provider 'nope' is not enabled.")
    missing = "3b2f7e4c-6a1d-4c55-9a51-0d5f1a2b3c4d"
    r = api.client.get(f"/v2/lbaas/flavors/{missing}")
    assert (r.status_code, r.json["faultstring"]) == (404, f"Flavor {missing} not found.")
