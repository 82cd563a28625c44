"""Octavia's list semantics: filters, both sort syntaxes, limit/marker pages with
their links, page_reverse, fields; the same under /v2 and /v2.0; the version
document; the member batch update."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.unit.controller.rest_helpers import MEMBER_SUBNET, Api

LB_URL = "/v2/lbaas/loadbalancers"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Api:
    api = Api(tmp_path_factory.mktemp("rest"))
    for name in ("c", "a", "e", "b", "d"):
        api.lb(name, description="odd" if name in "ace" else "even")
    api.settle()
    return api


def _names(body: dict, key: str = "loadbalancers") -> list[str]:
    return [x["name"] for x in body[key]]


def test_filters_by_field(api: Api) -> None:
    assert sorted(_names(api.client.get(f"{LB_URL}?description=odd").json)) == ["a", "c", "e"]
    assert _names(api.client.get(f"{LB_URL}?name=b&admin_state_up=true").json) == ["b"]
    assert api.client.get(f"{LB_URL}?admin_state_up=false").json["loadbalancers"] == []


@pytest.mark.parametrize("query", ["sort=name:desc", "sort_key=name&sort_dir=desc"])
def test_sorts(api: Api, query: str) -> None:
    assert _names(api.client.get(f"{LB_URL}?{query}").json) == ["e", "d", "c", "b", "a"]


def test_sort_errors(api: Api) -> None:
    assert api.client.get(f"{LB_URL}?sort=name:up").json["faultstring"] == \
        "Supplied sort direction 'up' is not valid."
    r = api.client.get(f"{LB_URL}?sort=colour")
    assert (r.status_code, r.json["faultstring"]) == (400, "Supplied sort key 'colour' is not "
                                                           "valid.")
    assert api.client.get(f"{LB_URL}?limit=x").status_code == 400
    assert api.client.get(f"{LB_URL}?marker=nope").json["faultstring"] == \
        "Supplied pagination marker 'nope' is not valid."


def test_pages_follow_links_both_ways(api: Api) -> None:
    first = api.client.get("/v2.0/lbaas/loadbalancers?limit=2&sort=name:asc").json
    assert _names(first) == ["a", "b"]
    (nxt,) = first["loadbalancers_links"]
    assert nxt["rel"] == "next" and urlsplit(nxt["href"]).path == "/v2.0/lbaas/loadbalancers"
    second = api.client.get(nxt["href"]).json
    assert _names(second) == ["c", "d"]
    links = {link["rel"]: link["href"] for link in second["loadbalancers_links"]}
    assert parse_qs(urlsplit(links["previous"]).query)["page_reverse"] == ["True"]
    assert _names(api.client.get(links["previous"]).json) == ["a", "b"]
    third = api.client.get(links["next"]).json
    assert _names(third) == ["e"]
    assert [link["rel"] for link in third["loadbalancers_links"]] == ["previous"]


def test_fields_select_attributes(api: Api) -> None:
    body = api.client.get(f"{LB_URL}?fields=id&fields=name&name=a").json
    assert set(body["loadbalancers"][0]) == {"id", "name"}
    lb_id = body["loadbalancers"][0]["id"]
    one = api.client.get(f"{LB_URL}/{lb_id}?fields=name,provisioning_status").json
    assert one == {"loadbalancer": {"name": "a", "provisioning_status": "ACTIVE"}}


def test_version_document(api: Api) -> None:
    versions = api.client.get("/").json["versions"]
    assert versions[0]["id"] == "v2.0"
    assert [v["status"] for v in versions].count("CURRENT") == 1
    assert versions[-1]["links"] == [{"href": "http://localhost/v2", "rel": "self"}]
    assert api.client.get("/v2.0").json == api.client.get("/v2").json == "v2"


def test_member_batch_update(api: Api) -> None:
    lb = api.client.get(f"{LB_URL}?name=a").json["loadbalancers"][0]
    pool = api.client.post("/v2/lbaas/pools", json={"pool": {
        "loadbalancer_id": lb["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})
    assert pool.status_code == 201, pool.json
    url = f"/v2/lbaas/pools/{pool.json['pool']['id']}/members"
    api.settle()
    keep = {"address": "198.51.100.10", "protocol_port": 80, "subnet_id": MEMBER_SUBNET}
    gone = {"address": "198.51.100.11", "protocol_port": 80}
    assert api.client.put(url, json={"members": [keep, gone]}).status_code == 202
    api.settle()
    r = api.client.put(url, json={"members": [{**keep, "weight": 5},
                                              {"address": "198.51.100.12",
                                               "protocol_port": 80}]})
    assert r.status_code == 202
    members = {m["address"]: m for m in api.client.get(url).json["members"]}
    assert set(members) == {"198.51.100.10", "198.51.100.11", "198.51.100.12"}
    assert members["198.51.100.10"]["weight"] == 5
    assert members["198.51.100.10"]["subnet_id"] == MEMBER_SUBNET
    assert members["198.51.100.11"]["provisioning_status"] == "PENDING_DELETE"
    assert members["198.51.100.12"]["provisioning_status"] == "PENDING_CREATE"
    # the LB is now PENDING_UPDATE: another batch is Octavia's 409
    assert api.client.put(url, json={"members": []}).status_code == 409
    api.settle()
    r = api.client.put(url, json={"members": [{"address": "nope", "protocol_port": 80}]})
    assert r.status_code == 400 and "members.0.address" in r.json["faultstring"]
