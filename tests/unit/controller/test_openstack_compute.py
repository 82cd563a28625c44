"""The OpenStack compute driver against a recorded-shape Keystone/Nova/Neutron on loopback:
the requests it makes (server with image, flavor, config drive files, ports, server
group; VIP port with allowed address pairs; deletes) and its bounded failure handling."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller_stub.controller.openstack_compute import (
    ComputeError,
    OpenStackComputeDriver,
    OpenStackOptions,
)
from controller_stub.pki import CertificateAuthority
from tests.support.fake_openstack import MGMT_NETWORK, VIP_NETWORK, FakeOpenStack

IMAGE = "4b1f2c3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
FLAVOR = "amphora-1c-1g"
AMP1 = "11111111-2222-4333-8444-555555555555"
AMP2 = "66666666-7777-4888-8999-aaaaaaaaaaaa"
LB = "0b0b0b0b-1c1c-4d2d-8e3e-4f4f4f4f4f4f"


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenStack]:
    fake = FakeOpenStack()
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(fake.clouds_yaml(tmp_path / "clouds.yaml")))
    for key in [k for k in __import__("os").environ if k.startswith("OS_") and
                k != "OS_CLIENT_CONFIG_FILE"]:
        monkeypatch.delenv(key)
    yield fake
    fake.close()


@pytest.fixture
def driver(cloud: FakeOpenStack, tmp_path: Path) -> OpenStackComputeDriver:
    ca = CertificateAuthority.create("Test Amphora CA")
    ca_cert, ca_key = ca.write(tmp_path / "ca")
    client = ca.issue_client().write(tmp_path / "client.pem")
    options = OpenStackOptions.parse({
        "cloud": "fake", "compute_flavor": FLAVOR, "mgmt_network": MGMT_NETWORK,
        "security_groups": "amphora-mgmt-sg", "ca_cert": str(ca_cert), "ca_key": str(ca_key),
        "client_cert": str(client), "poll_interval": "0.01", "delete_timeout": "2",
        "api_timeout": "1"})
    return OpenStackComputeDriver(options)


def test_single_boot_sends_image_flavor_config_drive_and_mgmt_port(
        driver: OpenStackComputeDriver, cloud: FakeOpenStack) -> None:
    data = driver.boot(AMP1, topology="SINGLE", flavor={}, zone=None, timeout=5,
                       image_id=IMAGE, lb_id=LB)
    [create] = cloud.sent("POST", "/compute/v2.1/servers")
    server = create.body["server"]
    assert server["name"] == f"amphora-{AMP1}"
    assert (server["imageRef"], server["flavorRef"]) == (IMAGE, FLAVOR)
    assert server["config_drive"] is True
    [mgmt_port_req] = cloud.sent("POST", "/network/v2.0/ports")
    assert mgmt_port_req.body["port"]["network_id"] == MGMT_NETWORK
    assert mgmt_port_req.body["port"]["security_groups"] == ["amphora-mgmt-sg"]
    mgmt_port = next(iter(cloud.ports.values()))
    assert server["networks"] == [{"port": mgmt_port["id"]}]
    assert "OS-SCH-HNT:scheduler_hints" not in create.body
    assert create.headers["OpenStack-API-Version"] == "compute 2.56"
    files = {f["path"]: base64.b64decode(f["contents"]).decode() for f in server["personality"]}
    conf = files["/etc/octavia/amphora-agent.conf"]
    assert f"amphora_id = {AMP1}" in conf
    assert "agent_server_cert = /etc/octavia/certs/server.pem" in conf
    assert "BEGIN CERTIFICATE" in files["/etc/octavia/certs/server.pem"]
    assert "PRIVATE KEY" in files["/etc/octavia/certs/server.pem"]
    assert files["/etc/octavia/certs/client_ca.pem"] == driver.client_ca_pem.decode()
    assert data["compute_id"] in cloud.servers
    assert data["mgmt_ip"] == mgmt_port["fixed_ips"][0]["ip_address"]
    [auth] = cloud.sent("POST", "/identity/v3/auth/tokens")
    identity = auth.body["auth"]["identity"]
    assert identity["methods"] == ["password"]
    assert identity["password"]["user"]["name"] == "amphora-controller"
    assert auth.body["auth"]["scope"]["project"]["name"] == "service"
    # every Nova/Neutron request carries the token the catalog came with
    assert {r.headers.get("X-Auth-Token") for r in cloud.requests
            if r.path.startswith(("/compute/v2.1/", "/network/v2.0/"))} == {"gAAAAAB-fake-token"}
    assert "not-a-real-password" not in str(data)


def test_active_standby_server_group_vip_port_with_allowed_pairs_and_full_delete(
        driver: OpenStackComputeDriver, cloud: FakeOpenStack) -> None:
    amphorae = {}
    for amp in (AMP1, AMP2):
        amphorae[amp] = driver.boot(amp, topology="ACTIVE_STANDBY", flavor={}, zone=None,
                                    timeout=5, image_id=IMAGE, lb_id=LB)
    [group_req] = cloud.sent("POST", "/compute/v2.1/os-server-groups")
    assert group_req.body["server_group"] == {"name": f"amphora-lb-{LB}",
                                              "policies": ["anti-affinity"]}
    [group_id] = cloud.server_groups
    creates = cloud.sent("POST", "/compute/v2.1/servers")
    assert [c.body["OS-SCH-HNT:scheduler_hints"] for c in creates] == [{"group": group_id}] * 2

    vip4, vip6 = driver.allocate_address(LB, VIP_NETWORK)
    assert driver.allocate_address(LB, VIP_NETWORK) == (vip4, vip6)  # the same port again
    assert vip4.startswith("203.0.113.") and vip6 is not None and vip6.startswith("2001:db8:")
    for amp, data in amphorae.items():
        port = driver.attach_port(amp, data, VIP_NETWORK, "vip")
        assert port.subnet_cidr == "203.0.113.0/24" and port.gateway == "203.0.113.1"
        assert port.ipv4 != vip4 and port.subnet_cidr6 == "2001:db8:113::/64"
        # idempotent per purpose: no second port
        assert driver.attach_port(amp, data, VIP_NETWORK, "vip") == port
    port_creates = [r.body["port"] for r in cloud.sent("POST", "/network/v2.0/ports")]
    vip_ports = [p for p in port_creates if p["name"].endswith("-vip")]
    assert [p["allowed_address_pairs"] for p in vip_ports] == [
        [{"ip_address": vip4}, {"ip_address": vip6}]] * 2
    assert [p["network_id"] for p in vip_ports] == [VIP_NETWORK] * 2
    attached = cloud.sent("POST", "/compute/v2.1/servers/")
    assert len([a for a in attached if a.path.endswith("/os-interface")]) == 2

    for amp, data in amphorae.items():
        driver.delete(amp, data)
    driver.release(LB)
    assert (cloud.servers, cloud.ports, cloud.server_groups) == ({}, {}, {})
    deleted = {r.path.rsplit("/", 2)[-2] for r in cloud.requests if r.method == "DELETE"}
    assert deleted == {"servers", "ports", "os-server-groups"}


def test_zone_spread_puts_the_zone_on_the_server(driver: OpenStackComputeDriver,
                                                cloud: FakeOpenStack) -> None:
    driver.boot(AMP1, topology="SINGLE", flavor={"compute_flavor": "big"},
                zone={"name": "az-a", "compute_zone": "nova-az1"}, timeout=5, image_id=IMAGE)
    [create] = cloud.sent("POST", "/compute/v2.1/servers")
    assert create.body["server"]["availability_zone"] == "nova-az1"
    assert create.body["server"]["flavorRef"] == "big"


def test_server_error_fails_with_the_fault_and_cleans_up(driver: OpenStackComputeDriver,
                                                         cloud: FakeOpenStack) -> None:
    cloud.server_outcome = "ERROR"
    with pytest.raises(ComputeError, match="No valid host was found"):
        driver.boot(AMP1, topology="SINGLE", flavor={}, zone=None, timeout=5, image_id=IMAGE)
    assert cloud.servers == {} and cloud.ports == {}
    assert cloud.sent("DELETE", "/compute/v2.1/servers/")
    assert cloud.sent("DELETE", "/network/v2.0/ports/")


def test_a_server_stuck_in_build_times_out_within_its_bound(driver: OpenStackComputeDriver,
                                                           cloud: FakeOpenStack) -> None:
    cloud.server_outcome = "BUILD"
    started = time.monotonic()
    with pytest.raises(ComputeError, match="not ACTIVE after"):
        driver.boot(AMP1, topology="SINGLE", flavor={}, zone=None, timeout=0.3, image_id=IMAGE)
    assert time.monotonic() - started < 5
    assert cloud.servers == {} and cloud.ports == {}


def test_a_hung_api_request_is_bounded_and_cleaned_up(driver: OpenStackComputeDriver,
                                                      cloud: FakeOpenStack) -> None:
    cloud.stall_server_create = True
    started = time.monotonic()
    with pytest.raises(ComputeError, match=r"(?i)timed out"):
        driver.boot(AMP1, topology="SINGLE", flavor={}, zone=None, timeout=60, image_id=IMAGE)
    assert time.monotonic() - started < 20  # api_timeout (1 s), not the boot timeout
    assert cloud.ports == {}  # the management port went with the failed boot


def test_a_repeated_boot_replaces_the_first_server(driver: OpenStackComputeDriver,
                                                   cloud: FakeOpenStack) -> None:
    first = driver.boot(AMP1, topology="SINGLE", flavor={}, zone=None, timeout=5,
                        image_id=IMAGE)
    second = driver.boot(AMP1, topology="SINGLE", flavor={}, zone=None, timeout=5,
                         image_id=IMAGE)
    assert list(cloud.servers) == [second["compute_id"]] != [first["compute_id"]]
    assert len(cloud.ports) == 1


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="mgmt_network"):
        OpenStackOptions.parse({"compute_flavor": "f", "ca_cert": "c", "ca_key": "k",
                                "client_cert": "x"})
    with pytest.raises(ValueError, match="server_group_policy"):
        OpenStackOptions.parse({"compute_flavor": "f", "mgmt_network": "m", "ca_cert": "c",
                                "ca_key": "k", "client_cert": "x",
                                "server_group_policy": "affinity"})


def test_the_controller_builds_the_driver_from_its_config(cloud: FakeOpenStack,
                                                          driver: OpenStackComputeDriver) -> None:
    from controller_stub.controller.compute import make_driver

    options = {"workdir": "/nonexistent", "zones": "", "cloud": "fake",
               "compute_flavor": FLAVOR, "mgmt_network": MGMT_NETWORK,
               "ca_cert": driver.options.ca_cert, "ca_key": driver.options.ca_key,
               "client_cert": driver.options.client_cert, "poll_interval": "0.01"}
    built = make_driver("openstack", options)
    assert isinstance(built, OpenStackComputeDriver)
    data = built.boot(AMP2, topology="SINGLE", flavor={}, zone=None, timeout=5,
                      image_id=IMAGE)
    assert data["compute_id"] in cloud.servers


def test_housekeeping_removes_servers_no_amphora_row_names(
        driver: OpenStackComputeDriver, cloud: FakeOpenStack, tmp_path: Path) -> None:
    from controller_stub.controller import db, models
    from controller_stub.controller.flows import Budget
    from controller_stub.controller.housekeeping import clean_orphans

    kept = driver.boot(AMP1, topology="SINGLE", flavor={}, zone=None, timeout=5,
                       image_id=IMAGE, lb_id=LB)
    orphan = driver.boot(AMP2, topology="SINGLE", flavor={}, zone=None, timeout=5,
                         image_id=IMAGE, lb_id=LB)
    assert kept["cert_expiration"] > "2028"  # two years, recorded at boot
    # servers this driver did not boot: another name, or our name without our metadata
    template = cloud.servers[kept["server_id"]]
    for name in ("web-1", f"amphora-{LB}"):
        other = str(__import__("uuid").uuid4())
        cloud.servers[other] = {**template, "id": other, "name": name, "metadata": {}}
    assert driver.instances() == {AMP1: kept["server_id"], AMP2: orphan["server_id"]}
    sessions = db.open_store(f"sqlite:///{tmp_path}/s.db")
    with sessions.begin() as session:
        lb = models.LoadBalancer(id=LB, topology="SINGLE", provisioning_status="ACTIVE",
                                 operating_status="ONLINE")
        session.add_all([lb, models.Amphora(id=AMP1, load_balancer=lb, status="ALLOCATED",
                                            role="STANDALONE", compute_data=kept)])
    report = clean_orphans(sessions, driver, budget=Budget())
    assert report.orphans == [orphan["server_id"]] and report.failed == {}
    assert sorted(s["name"] for s in cloud.servers.values()) == sorted(
        [f"amphora-{AMP1}", "web-1", f"amphora-{LB}"])
    assert not any(p["name"].startswith(f"amphora-{AMP2}") for p in cloud.ports.values())
