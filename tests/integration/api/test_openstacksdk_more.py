"""The API's L7 policies and rules, flavors, zones, providers, quotas and amphorae
through openstacksdk's ``load_balancer`` proxy (a real client), against one real
controller on the local fabric; Octavia's error codes; and ``amphora-ctl`` as a
subprocess against the same controller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import openstack
import pytest
from keystoneauth1 import noauth, session
from openstack import exceptions

from controller_stub.controller.daemon import Service
from tests.integration.api.conftest import Stack

pytestmark = pytest.mark.root
PROJECT, OTHER = "proj-a", "proj-b"


@dataclass
class Api:
    url: str
    service: Service
    vip: str  # the fabric's VIP network id

    def connect(self, project: str = PROJECT, admin: bool = False) -> Any:
        headers = {"X-Project-Id": project, **({"X-Roles": "admin"} if admin else {})}
        sess = session.Session(auth=noauth.NoAuth(endpoint=self.url),
                               additional_headers=headers)
        return openstack.connection.Connection(
            session=sess, load_balancer_endpoint_override=self.url,
            load_balancer_api_version="2").load_balancer


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    vip = stack.service.networks.by_name("vip")
    assert vip is not None
    return Api(stack.endpoint, stack.service, vip.id)


def settle(proxy: Any, lb_id: str, timeout: float = 90.0) -> Any:
    """Poll until the LB leaves PENDING_*; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        lb = proxy.get_load_balancer(lb_id)
        if not lb.provisioning_status.startswith("PENDING_"):
            return lb
        assert time.monotonic() < deadline, f"{lb_id} still {lb.provisioning_status}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def lb(api: Api) -> Any:
    proxy = api.connect()
    created = proxy.create_load_balancer(name="lb-l7", vip_network_id=api.vip)
    assert settle(proxy, created.id).provisioning_status == "ACTIVE"
    listener = proxy.create_listener(loadbalancer_id=created.id, protocol="HTTP",
                                     protocol_port=80)
    settle(proxy, created.id)
    pool = proxy.create_pool(loadbalancer_id=created.id, protocol="HTTP",
                             lb_algorithm="ROUND_ROBIN")
    settle(proxy, created.id)
    return {"id": created.id, "listener": listener.id, "pool": pool.id}


def test_l7_policies_and_rules_round_trip(api: Api, lb: dict[str, str]) -> None:
    proxy = api.connect()
    first = proxy.create_l7_policy(listener_id=lb["listener"], action="REDIRECT_TO_URL",
                                   redirect_url="http://www.example.com/", name="to-url")
    assert (first.action, first.position) == ("REDIRECT_TO_URL", 1)
    raw = proxy.get(f"/lbaas/l7policies/{first.id}").json()["l7policy"]
    assert raw["redirect_http_code"] == 302
    settle(proxy, lb["id"])
    second = proxy.create_l7_policy(listener_id=lb["listener"], action="REDIRECT_TO_POOL",
                                    redirect_pool_id=lb["pool"], position=1)
    assert (second.action, second.position) == ("REDIRECT_TO_POOL", 1)
    settle(proxy, lb["id"])
    assert proxy.get_l7_policy(first.id).position == 2
    rule = proxy.create_l7_rule(second.id, type="PATH", compare_type="STARTS_WITH",
                                value="/api")
    settle(proxy, lb["id"])
    assert [r.id for r in proxy.l7_rules(second.id)] == [rule.id]
    # (the SDK's update_l7_rule cannot send ``value``: it collides with its own argument)
    changed = proxy.update_l7_rule(rule.id, second.id, compare_type="REGEX", invert=True)
    assert (changed.compare_type, changed.rule_value, changed.invert) == (
        "REGEX", "/api", True)
    settle(proxy, lb["id"])
    moved = proxy.update_l7_policy(first.id, position=1, name="first-again")
    assert (moved.position, moved.name) == (1, "first-again")
    settle(proxy, lb["id"])
    listed = {p.id: p.position for p in proxy.l7_policies(listener_id=lb["listener"])}
    assert listed == {first.id: 1, second.id: 2}
    page = proxy.get(f"/lbaas/l7policies?listener_id={lb['listener']}&sort=position:desc"
                     "&limit=1").json()
    assert [p["id"] for p in page["l7policies"]] == [second.id]
    assert [link["rel"] for link in page["l7policies_links"]] == ["next"]
    proxy.delete_l7_rule(rule.id, second.id)
    settle(proxy, lb["id"])
    proxy.delete_l7_policy(second.id)
    settle(proxy, lb["id"])
    proxy.delete_l7_policy(first.id)
    settle(proxy, lb["id"])
    deadline = time.monotonic() + 30
    while list(proxy.l7_policies(listener_id=lb["listener"])):
        assert time.monotonic() < deadline, "policies not removed"
        time.sleep(0.2)


def test_l7_policy_routes_traffic(api: Api, stack: Stack, lb: dict[str, str]) -> None:
    """A path rule made through the API sends matching requests to another pool."""
    proxy = api.connect()
    m1, m2 = stack.site.members
    subnet = stack.subnet("member")
    settle(proxy, lb["id"])
    proxy.update_listener(lb["listener"], default_pool_id=lb["pool"])
    settle(proxy, lb["id"])
    proxy.create_member(lb["pool"], address=str(m1.ipv4), protocol_port=80, subnet_id=subnet)
    settle(proxy, lb["id"])
    second = proxy.create_pool(loadbalancer_id=lb["id"], protocol="HTTP",
                               lb_algorithm="ROUND_ROBIN")
    settle(proxy, lb["id"])
    proxy.create_member(second.id, address=str(m2.ipv4), protocol_port=80, subnet_id=subnet)
    settle(proxy, lb["id"])
    policy = proxy.create_l7_policy(listener_id=lb["listener"], action="REDIRECT_TO_POOL",
                                    redirect_pool_id=second.id)
    settle(proxy, lb["id"])
    proxy.create_l7_rule(policy.id, type="PATH", compare_type="STARTS_WITH", value="/two")
    assert settle(proxy, lb["id"]).provisioning_status == "ACTIVE"
    vip = proxy.get_load_balancer(lb["id"]).vip_address
    assert stack.site.served_by(vip, {"m2"}, path="/two/x") == {"m2"}
    assert stack.site.served_by(vip, {"m1"}, path="/one") == {"m1"}
    proxy.delete_l7_policy(policy.id)
    settle(proxy, lb["id"])
    assert stack.site.served_by(vip, {"m1"}, path="/two/x") == {"m1"}


def test_l7_errors_match_octavia(api: Api, lb: dict[str, str]) -> None:
    proxy = api.connect()
    with pytest.raises(exceptions.BadRequestException, match="redirect_url must not be None"):
        proxy.create_l7_policy(listener_id=lb["listener"], action="REDIRECT_TO_URL")
    unknown = proxy.post("/lbaas/l7policies", json={"l7policy": {
        "listener_id": lb["listener"], "action": "REJECT", "colour": "red"}}, raise_exc=False)
    assert unknown.status_code == 400
    assert unknown.json()["faultstring"] == "Unknown attribute for argument l7policy: colour"
    with pytest.raises(exceptions.BadRequestException, match="position"):
        proxy.create_l7_policy(listener_id=lb["listener"], action="REJECT", position="one")
    with pytest.raises(exceptions.ForbiddenException):
        api.connect(OTHER).get_l7_policy(
            proxy.create_l7_policy(listener_id=lb["listener"], action="REJECT").id)
    with pytest.raises(exceptions.ConflictException, match="immutable"):
        proxy.create_l7_policy(listener_id=lb["listener"], action="REJECT")  # LB PENDING
    settle(proxy, lb["id"])


def test_flavors_profiles_zones_and_providers(api: Api) -> None:
    admin, user = api.connect(admin=True), api.connect()
    profile = admin.create_flavor_profile(name="fp-single", provider_name="amphora",
                                          flavor_data='{"loadbalancer_topology": "SINGLE"}')
    assert json.loads(profile.flavor_data) == {"loadbalancer_topology": "SINGLE"}
    flavor = admin.create_flavor(name="single", flavor_profile_id=profile.id,
                                 description="one amphora")
    assert [f.name for f in user.flavors()] == ["single"]
    assert admin.update_flavor(flavor.id, is_enabled=False).is_enabled is False
    with pytest.raises(exceptions.ConflictException, match="in use"):
        admin.delete_flavor_profile(profile.id)
    with pytest.raises(exceptions.ConflictException, match="already exists"):
        admin.create_flavor(name="single", flavor_profile_id=profile.id)
    with pytest.raises(exceptions.ForbiddenException):
        user.create_flavor_profile(name="x", provider_name="amphora", flavor_data="{}")
    with pytest.raises(exceptions.BadRequestException, match="Provider 'f5' is not enabled"):
        admin.create_flavor_profile(name="x", provider_name="f5", flavor_data="{}")
    with pytest.raises(exceptions.BadRequestException, match="not a valid option"):
        admin.create_flavor_profile(name="x", provider_name="amphora", flavor_data="{oops")
    admin.delete_flavor(flavor.id)
    admin.delete_flavor_profile(profile.id)
    with pytest.raises(exceptions.NotFoundException):
        admin.get_flavor_profile(profile.id)

    zprofile = admin.create_availability_zone_profile(
        name="zp", provider_name="amphora", availability_zone_data='{"compute_zone": "az1"}')
    zone = admin.create_availability_zone(name="az1",
                                          availability_zone_profile_id=zprofile.id)
    assert user.get_availability_zone("az1").availability_zone_profile_id == zprofile.id
    assert admin.update_availability_zone(zone.name, description="first").description == \
        "first"
    assert [z.name for z in user.availability_zones()] == ["az1"]
    assert [p.id for p in admin.availability_zone_profiles()] == [zprofile.id]
    admin.delete_availability_zone("az1")
    admin.delete_availability_zone_profile(zprofile.id)

    assert {p.name for p in user.providers()} == {"amphora", "octavia"}
    capabilities = {c.name for c in user.provider_flavor_capabilities("amphora")}
    assert {"loadbalancer_topology", "amp_image_tag"} <= capabilities


def test_quotas_are_shown_set_and_enforced(api: Api, lb: dict[str, str]) -> None:
    admin, user = api.connect(admin=True), api.connect(OTHER)
    assert user.get_quota(OTHER).load_balancers == -1
    with pytest.raises(exceptions.ForbiddenException):
        user.update_quota(OTHER, load_balancers=5)
    quota = admin.update_quota(OTHER, load_balancers=1, members=1)
    assert (quota.load_balancers, quota.members, quota.listeners) == (1, 1, -1)
    assert [q.project_id for q in admin.quotas()] == [OTHER]
    first = user.create_load_balancer(name="quota-1", vip_network_id=api.vip)
    with pytest.raises(exceptions.ForbiddenException,
                       match="Quota has been met for resources: Load Balancer"):
        user.create_load_balancer(name="quota-2", vip_network_id=api.vip)
    settle(user, first.id)
    admin.delete_quota(OTHER)
    assert admin.get_quota(OTHER).load_balancers == -1
    assert list(admin.quotas()) == []
    user.delete_load_balancer(first.id)


def test_amphorae_list_show_stats_and_configure(api: Api, lb: dict[str, str]) -> None:
    admin = api.connect(admin=True)
    mine = [a for a in admin.amphorae(loadbalancer_id=lb["id"])]
    assert [a.status for a in mine] == ["ALLOCATED"]
    shown = admin.get_amphora(mine[0].id)
    assert (shown.loadbalancer_id, shown.role) == (lb["id"], "STANDALONE")
    with pytest.raises(exceptions.ForbiddenException):
        list(api.connect().amphorae())
    with pytest.raises(exceptions.NotFoundException):
        admin.get_amphora("00000000-0000-4000-8000-00000000dead")
    deadline = time.monotonic() + 60
    while (stats := admin.get(f"/octavia/amphorae/{mine[0].id}/stats",
                              raise_exc=False)).status_code == 404:  # until a heartbeat
        assert time.monotonic() < deadline, stats.text
        time.sleep(0.5)
    rows = stats.json()["amphora_stats"]
    assert {(r["id"], r["loadbalancer_id"], r["listener_id"]) for r in rows} == {
        (mine[0].id, lb["id"], lb["listener"])}
    assert all(isinstance(r[k], int) for r in rows for k in (
        "active_connections", "bytes_in", "bytes_out", "request_errors", "total_connections"))
    admin.configure_amphora(mine[0].id)


def ctl(api: Api, *argv: str, project: str = PROJECT,
        admin: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMPHORA_URL": api.url,
           "OS_PROJECT_ID": project, **({"OS_ROLES": "admin"} if admin else {})}
    env.pop("OS_CLOUD", None)
    return subprocess.run([sys.executable, "-m", "controller_stub.cli", *argv], env=env,
                          capture_output=True, text=True, timeout=180)


def test_amphora_ctl_drives_the_api(api: Api, lb: dict[str, str]) -> None:
    listed = ctl(api, "lb", "list", "name=lb-l7", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [row["id"] for row in json.loads(listed.stdout)] == [lb["id"]]
    tree = ctl(api, "lb", "status", lb["id"])
    assert tree.returncode == 0, tree.stderr
    assert "loadbalancer lb-l7" in tree.stdout and "listener" in tree.stdout
    created = ctl(api, "member", "create", lb["pool"], "address=192.0.2.50",
                  "protocol_port=8080", "--wait", "--json")
    assert created.returncode == 0, created.stderr
    member = json.loads(created.stdout)
    assert member["provisioning_status"] == "ACTIVE"
    assert "PENDING_CREATE" in created.stderr and "ACTIVE" in created.stderr
    quota = ctl(api, "quota", "set", PROJECT, "listener=0", "l7rule=7", "--json", admin=True)
    assert quota.returncode == 0, quota.stderr
    assert json.loads(quota.stdout) == {"project_id": PROJECT, "loadbalancer": -1,
                                        "listener": 0, "pool": -1, "member": -1,
                                        "healthmonitor": -1, "l7policy": -1, "l7rule": 7}
    refused = ctl(api, "listener", "create", f"loadbalancer_id={lb['id']}", "protocol=TCP",
                  "protocol_port=81")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "amphora-ctl listener: error: Quota has been met for resources: Listener (HTTP 403)"]
    assert ctl(api, "quota", "reset", PROJECT, admin=True).returncode == 0
    deleted = ctl(api, "member", "delete", lb["pool"], member["id"], "--wait")
    assert deleted.returncode == 0, deleted.stderr
    assert "DELETED" in deleted.stderr
    redirect = ctl(api, "l7policy", "create", f"listener_id={lb['listener']}",
                   "action=REDIRECT_TO_URL", "redirect_url=http://www.example.com/",
                   "redirect_http_code=301", "--wait",
                   "--json")
    assert redirect.returncode == 0, redirect.stderr
    policy = json.loads(redirect.stdout)
    assert (policy["action"], policy["redirect_http_code"], policy["provisioning_status"]) == (
        "REDIRECT_TO_URL", 301, "ACTIVE")
    gone = ctl(api, "l7policy", "delete", policy["id"], "--wait")
    assert gone.returncode == 0, gone.stderr
    missing = ctl(api, "lb", "show", "00000000-0000-4000-8000-00000000beef")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "(HTTP 404)" in missing.stderr


def test_bad_bodies_and_other_projects_get_octavias_codes(api: Api, lb: dict[str, str]) -> None:
    admin, user, other = api.connect(admin=True), api.connect(), api.connect(OTHER)
    settle(user, lb["id"])
    policy = user.create_l7_policy(listener_id=lb["listener"], action="REJECT")
    settle(user, lb["id"])
    rule = user.create_l7_rule(policy.id, type="HEADER", compare_type="EQUAL_TO", key="X-A",
                               value="1")
    with pytest.raises(exceptions.ConflictException, match="immutable"):
        user.update_l7_policy(policy.id, name="while-pending")
    settle(user, lb["id"])
    with pytest.raises(exceptions.ForbiddenException):
        other.get_l7_rule(rule.id, policy.id)
    with pytest.raises(exceptions.ForbiddenException):
        other.delete_l7_policy(policy.id)
    with pytest.raises(exceptions.ForbiddenException):
        other.get_quota(PROJECT)
    with pytest.raises(exceptions.BadRequestException, match="requires a key"):
        user.create_l7_rule(policy.id, type="COOKIE", compare_type="EQUAL_TO", value="1")
    bodies = [
        ("/lbaas/quotas/" + OTHER, {"quota": {"loadbalancer": "ten"}}, "put",
         "Invalid input for field/attribute quota.loadbalancer"),
        ("/lbaas/quotas/" + OTHER, {"quota": {"loadbalancer": -2}}, "put",
         "Invalid input for field/attribute quota.loadbalancer"),
        ("/lbaas/quotas/" + OTHER, {"quota": {"routers": 1}}, "put",
         "Unknown attribute for argument quota: routers"),
        ("/lbaas/flavors", {"flavor": {"name": "f"}}, "post",
         "Invalid input for field/attribute flavor.flavor_profile_id. Value: 'None'. "
         "Mandatory field missing."),
        (f"/lbaas/l7policies/{policy.id}/rules", {"rule": {
            "type": "PATH", "compare_type": "LIKE", "value": "/"}}, "post",
         "Invalid input for field/attribute rule.compare_type"),
        ("/lbaas/availabilityzones", {"availability_zone": {
            "name": "z", "availability_zone_profile_id": "00000000-0000-4000-8000-000000000001",
            "size": 3}}, "post", "Unknown attribute for argument availability_zone: size"),
    ]
    for path, body, method, fault in bodies:
        response = getattr(admin, method)(path, json=body, raise_exc=False)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["faultstring"].startswith(fault), response.text
    user.delete_l7_policy(policy.id)
    settle(user, lb["id"])


def test_amphora_ctl_reads_clouds_yaml_and_shows_trees(api: Api, lb: dict[str, str],
                                                       tmp_path: Any) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  local:\n    auth_type: none\n"
        f"    auth:\n      endpoint: {api.url}\n"
        f"    load_balancer_endpoint_override: {api.url}\n", encoding="utf-8")
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds)}
    for name in ("AMPHORA_URL", "OS_ENDPOINT", "OS_CLOUD", "OS_PROJECT_ID"):
        env.pop(name, None)
    run = subprocess.run([sys.executable, "-m", "controller_stub.cli", "network", "list",
                          "--os-cloud", "local", "--json"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert api.vip in {n["id"] for n in json.loads(run.stdout)["networks"]}
    stats = ctl(api, "lb", "stats", lb["id"], "--json")
    assert stats.returncode == 0, stats.stderr
    assert set(json.loads(stats.stdout)) == {"active_connections", "bytes_in", "bytes_out",
                                             "request_errors", "total_connections"}
    nowhere = subprocess.run([sys.executable, "-m", "controller_stub.cli", "lb", "list"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert nowhere.returncode == 1
    assert nowhere.stderr.startswith("amphora-ctl lb: error: no API endpoint")


def test_tags_set_replaced_and_filtered_through_openstacksdk(api: Api, stack: Stack,
                                                             lb: dict[str, str]) -> None:
    """What Kubernetes' cloud provider and Terraform do: tag objects, find them by tag."""
    proxy = api.connect()
    settle(proxy, lb["id"])
    assert proxy.update_load_balancer(lb["id"], tags=["kube", "cluster-a"]).tags == [
        "kube", "cluster-a"]
    settle(proxy, lb["id"])
    pool = proxy.create_pool(loadbalancer_id=lb["id"], protocol="HTTP",
                             lb_algorithm="ROUND_ROBIN", tags=["svc", "kube"])
    assert pool.tags == ["svc", "kube"]
    settle(proxy, lb["id"])
    member = proxy.create_member(pool.id, address=str(stack.site.members[1].ipv4),
                                 protocol_port=8080, subnet_id=stack.subnet("member"),
                                 tags=["blue"])
    settle(proxy, lb["id"])
    assert proxy.get_member(member.id, pool.id).tags == ["blue"]
    assert [x.id for x in proxy.load_balancers(tags="kube,cluster-a")] == [lb["id"]]
    assert lb["id"] in {x.id for x in proxy.load_balancers(any_tags="none,cluster-a")}
    assert lb["id"] not in {x.id for x in proxy.load_balancers(not_tags="kube")}
    assert lb["id"] not in {x.id for x in proxy.load_balancers(not_any_tags="x,cluster-a")}
    assert [x.id for x in proxy.pools(tags=["svc", "kube"])] == [pool.id]
    untagged = {x.id for x in proxy.pools(not_any_tags="kube")}
    assert lb["pool"] in untagged and pool.id not in untagged
    assert [m.id for m in proxy.members(pool.id, any_tags="blue,green")] == [member.id]
    # an update replaces the list
    assert proxy.update_pool(pool.id, tags=["other"]).tags == ["other"]
    settle(proxy, lb["id"])
    assert list(proxy.pools(tags="svc")) == []
    proxy.delete_pool(pool.id)
    settle(proxy, lb["id"])
    assert proxy.update_load_balancer(lb["id"], tags=[]).tags == []
    settle(proxy, lb["id"])


def test_amphora_failover_is_accepted_once(api: Api, lb: dict[str, str]) -> None:
    """The API's side of a failover (the flow itself is tested with the engine): 202, the
    LB PENDING_UPDATE, a second request while it is pending a 409."""
    admin = api.connect(admin=True)
    settle(admin, lb["id"])
    amphora = next(iter(admin.amphorae(loadbalancer_id=lb["id"])))
    admin.failover_amphora(amphora.id)
    assert admin.get_load_balancer(lb["id"]).provisioning_status == "PENDING_UPDATE"
    again = admin.put(f"/octavia/amphorae/{amphora.id}/failover", raise_exc=False)
    assert again.status_code == 409
    assert again.json()["faultstring"] == (f"Load Balancer {lb['id']} is immutable and "
                                           "cannot be updated.")
    settle(admin, lb["id"], timeout=180)  # leave no flow running at teardown
