"""Octavia's ``tags`` over the REST app (no workers): on every object's create and
update (a PUT replaces the list), in every answer, the four list filters, refusals
of bad tags, and stores made before tags existed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.controller.rest_helpers import MEMBER_SUBNET, Api, check_tags_after_upgrade

LB_URL = "/v2/lbaas/loadbalancers"


def _created(api: Api, url: str, root: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.client.post(url, json={root: body})
    assert r.status_code == 201, r.json
    api.settle()
    return r.json[root]


def _updated(api: Api, url: str, root: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.client.put(url, json={root: body})
    assert r.status_code == 200, r.json
    api.settle()
    return r.json[root]


def test_every_object_takes_tags_and_a_put_replaces_them(tmp_path: Path) -> None:
    api = Api(tmp_path)
    lb = api.lb(tags=["k8s", "cluster=a"])
    api.settle()
    assert lb["tags"] == ["k8s", "cluster=a"]
    listener = _created(api, "/v2/lbaas/listeners", "listener", {
        "loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 80, "tags": ["l"]})
    pool = _created(api, "/v2/lbaas/pools", "pool", {
        "listener_id": listener["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
        "tags": ["p"]})
    members = f"/v2/lbaas/pools/{pool['id']}/members"
    member = _created(api, members, "member", {
        "address": "198.51.100.10", "protocol_port": 80, "subnet_id": MEMBER_SUBNET,
        "tags": ["m", "m"]})
    monitor = _created(api, "/v2/lbaas/healthmonitors", "healthmonitor", {
        "pool_id": pool["id"], "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3,
        "tags": ["h"]})
    policy = _created(api, "/v2/lbaas/l7policies", "l7policy", {
        "listener_id": listener["id"], "action": "REJECT", "tags": ["l7p"],
        "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/a",
                   "tags": ["inline"]}]})
    rules = f"/v2/lbaas/l7policies/{policy['id']}/rules"
    rule = _created(api, rules, "rule", {"type": "PATH", "compare_type": "STARTS_WITH",
                                         "value": "/b", "tags": ["r"]})
    # a duplicate is one tag, as in Octavia's tag table
    assert (listener["tags"], pool["tags"], member["tags"], monitor["tags"], policy["tags"],
            rule["tags"]) == (["l"], ["p"], ["m"], ["h"], ["l7p"], ["r"])
    inline = api.client.get(rules).json["rules"]
    assert sorted(r["tags"] for r in inline) == [["inline"], ["r"]]

    objects = [(f"{LB_URL}/{lb['id']}", "loadbalancer"),
               (f"/v2/lbaas/listeners/{listener['id']}", "listener"),
               (f"/v2/lbaas/pools/{pool['id']}", "pool"),
               (f"{members}/{member['id']}", "member"),
               (f"/v2/lbaas/healthmonitors/{monitor['id']}", "healthmonitor"),
               (f"/v2/lbaas/l7policies/{policy['id']}", "l7policy"),
               (f"{rules}/{rule['id']}", "rule")]
    for url, root in objects:
        assert _updated(api, url, root, {"tags": ["new", root]})["tags"] == ["new", root]
        assert api.client.get(url).json[root]["tags"] == ["new", root]
        # a PUT without tags, or with ``tags: null``, leaves them; ``[]`` clears them
        assert _updated(api, url, root, {"name": "n"} if root != "rule" else
                        {"invert": True})["tags"] == ["new", root]
        assert _updated(api, url, root, {"tags": None})["tags"] == ["new", root]
        assert _updated(api, url, root, {"tags": []})["tags"] == []
    # a tag-only change takes the LB through the same update as a new name
    r = api.client.put(f"{LB_URL}/{lb['id']}", json={"loadbalancer": {"tags": ["x"]}})
    assert r.json["loadbalancer"]["provisioning_status"] == "PENDING_UPDATE"
    api.settle()
    untagged = api.lb("plain")
    assert untagged["tags"] == []
    assert api.client.get(f"{LB_URL}/{untagged['id']}").json["loadbalancer"]["tags"] == []


def test_a_graph_create_tags_every_level(tmp_path: Path) -> None:
    api = Api(tmp_path)
    lb = api.lb(tags=["lb"], listeners=[{
        "protocol": "HTTP", "protocol_port": 80, "tags": ["li"],
        "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "tags": ["po"],
                         "members": [{"address": "198.51.100.10", "protocol_port": 80,
                                      "tags": ["me"]}],
                         "healthmonitor": {"type": "TCP", "delay": 5, "timeout": 3,
                                           "max_retries": 3, "tags": ["hm"]}}}])
    assert (lb["tags"], lb["listeners"][0]["tags"], lb["pools"][0]["tags"]) == (
        ["lb"], ["li"], ["po"])
    pool_id = lb["pools"][0]["id"]
    assert [m["tags"] for m in api.client.get(
        f"/v2/lbaas/pools/{pool_id}/members").json["members"]] == [["me"]]
    assert [h["tags"] for h in api.client.get(
        "/v2/lbaas/healthmonitors").json["healthmonitors"]] == [["hm"]]


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory) -> Api:
    api = Api(tmp_path_factory.mktemp("tags"))
    for name, tags in (("xy", ["x", "y"]), ("x", ["x"]), ("yz", ["y", "z"]), ("none", [])):
        api.lb(name, tags=tags)
    api.settle()
    pool = _created(api, "/v2/lbaas/pools", "pool", {
        "loadbalancer_id": api.client.get(f"{LB_URL}?name=x").json["loadbalancers"][0]["id"],
        "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"})
    for last, tags in ((10, ["blue"]), (11, ["green"]), (12, [])):
        _created(api, f"/v2/lbaas/pools/{pool['id']}/members", "member", {
            "address": f"198.51.100.{last}", "protocol_port": 80, "tags": tags})
    return api


@pytest.mark.parametrize(("query", "names"), [
    ("tags=x,y", ["xy"]),
    ("tags=x&tags=y", ["xy"]),
    ("tags=x", ["x", "xy"]),
    ("tags=w", []),
    ("tags-any=x,z", ["x", "xy", "yz"]),
    ("not-tags=x,y", ["none", "x", "yz"]),
    ("not-tags-any=x", ["none", "yz"]),
    ("not-tags-any=x&not-tags-any=z", ["none"]),
    ("tags-any=y&not-tags=y,z", ["xy"]),
    ("tags=y&name=yz", ["yz"]),
])
def test_list_filters_by_tags(tagged: Api, query: str, names: list[str]) -> None:
    r = tagged.client.get(f"{LB_URL}?{query}")
    assert r.status_code == 200, r.json
    assert sorted(lb["name"] for lb in r.json["loadbalancers"]) == names


def test_tag_filters_on_a_child_list_and_an_untagged_list(tagged: Api) -> None:
    pool = tagged.client.get("/v2/lbaas/pools").json["pools"][0]
    url = f"/v2/lbaas/pools/{pool['id']}/members"
    assert [m["address"] for m in tagged.client.get(f"{url}?tags-any=green,red").json[
        "members"]] == ["198.51.100.11"]
    assert sorted(m["address"] for m in tagged.client.get(f"{url}?not-tags=blue").json[
        "members"]) == ["198.51.100.11", "198.51.100.12"]
    # amphorae have no tags: Octavia ignores the filter there
    r = tagged.client.get("/v2/octavia/amphorae?tags=x", headers={"X-Roles": "admin"})
    assert r.status_code == 200, r.json


@pytest.mark.parametrize(("tags", "where"), [
    ("k8s", "loadbalancer.tags"),
    ([1], "loadbalancer.tags.0"),
    (["ok", "t" * 256], "loadbalancer.tags.1"),
    ([None], "loadbalancer.tags.0"),
])
def test_bad_tags_are_400_and_nothing_is_stored(tmp_path: Path, tags: Any, where: str) -> None:
    api = Api(tmp_path)
    r = api.client.post(LB_URL, json={"loadbalancer": {"name": "bad", "tags": tags}})
    assert r.status_code == 400
    assert r.json["faultstring"].startswith(f"Invalid input for field/attribute {where}.")
    assert api.client.get(LB_URL).json["loadbalancers"] == []
    lb = api.lb(tags=["kept"])
    api.settle()
    r = api.client.put(f"{LB_URL}/{lb['id']}", json={"loadbalancer": {"tags": tags}})
    assert r.status_code == 400
    assert api.client.get(f"{LB_URL}/{lb['id']}").json["loadbalancer"]["tags"] == ["kept"]
    # the longest tag Octavia takes is 255 characters
    longest = ["t" * 255]
    assert _updated(api, f"{LB_URL}/{lb['id']}", "loadbalancer",
                    {"tags": longest})["tags"] == longest


def test_bad_tags_on_a_nested_member_are_400(tmp_path: Path) -> None:
    api = Api(tmp_path)
    r = api.client.post(LB_URL, json={"loadbalancer": {"name": "bad", "listeners": [{
        "protocol": "HTTP", "protocol_port": 80, "default_pool": {
            "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": [{
                "address": "198.51.100.10", "protocol_port": 80, "tags": "m"}]}}]}})
    assert r.status_code == 400
    assert "listeners.0.default_pool.members.0.tags" in r.json["faultstring"]


def test_a_store_from_before_tags_reads_them_as_empty(tmp_path: Path) -> None:
    check_tags_after_upgrade(f"sqlite:///{tmp_path}/state.db")
