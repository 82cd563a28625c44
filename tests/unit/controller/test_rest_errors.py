"""Octavia's status codes and error bodies for bad bodies, unknown fields, wrong
types, other projects' objects, PENDING load balancers and missing ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.controller.rest_helpers import MEMBER_SUBNET, REGISTRY, VIP_NETWORK, Api

LB_URL = "/v2/lbaas/loadbalancers"


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return Api(tmp_path)


def _fault(response: object, code: int) -> str:
    assert response.status_code == code, response.json  # type: ignore[attr-defined]
    body = response.json  # type: ignore[attr-defined]
    assert set(body) == {"faultcode", "faultstring", "debuginfo"}
    assert body["faultcode"] == ("Client" if code < 500 else "Server")
    assert body["debuginfo"] is None
    return body["faultstring"]


def test_unknown_field_is_400_naming_it(api: Api) -> None:
    r = api.client.post(LB_URL, json={"loadbalancer": {"vip_network_id": VIP_NETWORK,
                                                       "colour": "blue"}})
    assert _fault(r, 400) == "Unknown attribute for argument loadbalancer: colour"
    # also when a mandatory field is missing too: the unknown one is named first
    r = api.client.post("/v2/lbaas/listeners", json={"listener": {"protocol": "HTTP",
                                                                  "colour": "blue"}})
    assert _fault(r, 400) == "Unknown attribute for argument listener: colour"


def test_unknown_nested_field_is_400(api: Api) -> None:
    r = api.client.post(LB_URL, json={"loadbalancer": {"vip_network_id": VIP_NETWORK,
                                                       "listeners": [{"protocol": "HTTP",
                                                                      "protocol_port": 80,
                                                                      "bogus": 1}]}})
    assert _fault(r, 400) == "Unknown attribute for argument loadbalancer.listeners.0: bogus"


def test_wrong_type_is_400_with_value(api: Api) -> None:
    r = api.client.post(LB_URL, json={"loadbalancer": {"vip_network_id": VIP_NETWORK,
                                                       "admin_state_up": "yes"}})
    text = _fault(r, 400)
    assert text.startswith("Invalid input for field/attribute loadbalancer.admin_state_up. "
                           "Value: 'yes'.")


def test_missing_mandatory_and_not_json(api: Api) -> None:
    lb = api.lb()
    api.settle()
    r = api.client.post("/v2/lbaas/listeners", json={"listener": {
        "loadbalancer_id": lb["id"], "protocol": "HTTP"}})
    assert "listener.protocol_port" in _fault(r, 400)
    r = api.client.post(LB_URL, data="{not json", content_type="application/json")
    _fault(r, 400)
    r = api.client.post(LB_URL, json={"load_balancer": {}})
    assert _fault(r, 400) == "Unknown attribute for argument loadbalancer: load_balancer"


def test_unsupported_neutron_fields_are_refused(api: Api) -> None:
    for field, value in (("vip_port_id", "3b2f7e4c-6a1d-4c55-9a51-0d5f1a2b3c4d"),
                         ("vip_qos_policy_id", "3b2f7e4c-6a1d-4c55-9a51-0d5f1a2b3c4d")):
        r = api.client.post(LB_URL, json={"loadbalancer": {"vip_network_id": VIP_NETWORK,
                                                           field: value}})
        assert _fault(r, 400) == (f"Validation failure: {field} is not supported by this "
                                  "deployment.")


def test_unknown_vip_network_and_subnet(api: Api) -> None:
    r = api.client.post(LB_URL, json={"loadbalancer": {"name": "no-vip"}})
    assert _fault(r, 400) == ("Validation failure: VIP must contain one of: vip_port_id, "
                              "vip_network_id, vip_subnet_id.")
    other = "3b2f7e4c-6a1d-4c55-9a51-0d5f1a2b3c4d"
    r = api.client.post(LB_URL, json={"loadbalancer": {"vip_network_id": other}})
    assert _fault(r, 400) == f"Validation failure: Network {other} not found."
    r = api.client.post(LB_URL, json={"loadbalancer": {"vip_subnet_id": other}})
    assert _fault(r, 400) == f"Validation failure: Subnet {other} not found."
    # a member subnet is not on the VIP network
    r = api.client.post(LB_URL, json={"loadbalancer": {"vip_network_id": VIP_NETWORK,
                                                       "vip_subnet_id": MEMBER_SUBNET}})
    assert "is not on network" in _fault(r, 400)


def test_other_projects_objects_are_403_and_hidden_from_lists(api: Api) -> None:
    lb = api.lb()
    other = {"X-Project-Id": "p2"}
    assert _fault(api.client.get(f"{LB_URL}/{lb['id']}", headers=other), 403) == \
        "Policy does not allow this request to be performed."
    assert api.client.delete(f"{LB_URL}/{lb['id']}", headers=other).status_code == 403
    assert api.client.get(LB_URL, headers=other).json["loadbalancers"] == []
    _fault(api.client.get(f"{LB_URL}?project_id=p1", headers=other), 403)
    admin = {"X-Project-Id": "p2", "X-Roles": "admin"}
    assert [x["id"] for x in api.client.get(LB_URL, headers=admin).json["loadbalancers"]] \
        == [lb["id"]]


def test_pending_lb_is_409_and_missing_is_404(api: Api) -> None:
    lb = api.lb()
    r = api.client.put(f"{LB_URL}/{lb['id']}", json={"loadbalancer": {"name": "x"}})
    assert _fault(r, 409) == f"Load Balancer {lb['id']} is immutable and cannot be updated."
    r = api.client.post("/v2/lbaas/listeners", json={"listener": {
        "loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 80}})
    _fault(r, 409)
    missing = "3b2f7e4c-6a1d-4c55-9a51-0d5f1a2b3c4d"
    assert _fault(api.client.get(f"{LB_URL}/{missing}"), 404) == \
        f"Load Balancer {missing} not found."
    _fault(api.client.get(f"/v2/lbaas/pools/{missing}/members"), 404)


def test_duplicate_listener_port_is_409_and_lb_with_children_needs_cascade(api: Api) -> None:
    lb = api.lb()
    api.settle()
    r = api.client.post("/v2/lbaas/listeners", json={"listener": {
        "loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 80}})
    assert r.status_code == 201
    api.settle()
    r = api.client.post("/v2/lbaas/listeners", json={"listener": {
        "loadbalancer_id": lb["id"], "protocol": "TCP", "protocol_port": 80}})
    assert "protocol_port 80" in _fault(r, 409)
    assert "it has children" in _fault(api.client.delete(f"{LB_URL}/{lb['id']}"), 400)
    assert api.client.delete(f"{LB_URL}/{lb['id']}?cascade=true").status_code == 204
    assert api.client.get(f"{LB_URL}/{lb['id']}").json["loadbalancer"][
        "provisioning_status"] == "PENDING_DELETE"


def test_noauth_refuses_a_malformed_project_header(api: Api) -> None:
    r = api.client.get(LB_URL, headers={"X-Project-Id": "a b"})
    assert _fault(r, 400).startswith("X-Project-Id")


def test_vip_address_is_checked_against_the_subnet_and_other_lbs(api: Api) -> None:
    outside = api.client.post(LB_URL, json={"loadbalancer": {
        "vip_network_id": VIP_NETWORK, "vip_address": "198.51.100.5"}})
    assert "is not a host address of subnet" in _fault(outside, 400)
    gateway = api.client.post(LB_URL, json={"loadbalancer": {
        "vip_network_id": VIP_NETWORK, "vip_address": "203.0.113.1"}})
    _fault(gateway, 400)
    lb = api.lb(vip_address="203.0.113.77")
    assert lb["vip_address"] == "203.0.113.77"
    again = api.client.post(LB_URL, json={"loadbalancer": {
        "vip_network_id": VIP_NETWORK, "vip_address": "203.0.113.77"}})
    assert "already allocated" in _fault(again, 409)
    v6 = next(s for s in REGISTRY.subnets.values()
              if s.network_name == "vip" and s.ip_version == 6)
    r = api.client.post(LB_URL, json={"loadbalancer": {"vip_subnet_id": v6.id}})
    assert "IPv6 VIPs are not supported" in _fault(r, 400)
