"""``auth_strategy = keystone``: keystonemiddleware's auth_token, configured as
in Octavia's ``[keystone_authtoken]``, against a real Keystone; openstacksdk
finds the API in Keystone's catalog; projects see only their own objects."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import openstack.exceptions
import pytest
import requests

from controller_stub.compute.local import DEFAULT_NETWORKS
from controller_stub.controller import db
from controller_stub.controller.api import Controller
from controller_stub.controller.imaging import StaticImage
from controller_stub.controller.networks import NetworkRegistry
from controller_stub.controller.rest import auth, create_app
from controller_stub.controller.rest.server import ApiServer
from tests.integration.api.keystone_fixture import Keystone, keystone

REGISTRY = NetworkRegistry(DEFAULT_NETWORKS)


def _connect(ks: Keystone, project: str, user: str, password: str) -> Any:
    return openstack.connection.Connection(
        auth_url=ks.url, username=user, password=password, project_name=project,
        user_domain_name="Default", project_domain_name="Default", region_name="RegionOne")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("keystone")
    for ks in keystone(Path(f"/tmp/ampk-{os.urandom(3).hex()}")):
        sessions = db.open_store(f"sqlite:///{workdir}/state.db")
        controller = Controller(sessions, StaticImage("img", {"haproxy_version": "2.6.12",
                                                              "openssl_version": "3.0.11"}))
        app = create_app(controller, REGISTRY)
        base = ks.url.rsplit("/v3", 1)[0]
        app.wsgi_app = auth.wrap(app.wsgi_app, "keystone", keystone_options={  # type: ignore[method-assign]
            "www_authenticate_uri": base, "auth_url": base, "auth_type": "password",
            "username": "admin", "password": ks.admin_password, "project_name": "admin",
            "user_domain_name": "Default", "project_domain_name": "Default",
            "region_name": "RegionOne"})
        server = ApiServer(app, "127.0.0.1", 0).start()
        try:
            host, port = server.address
            endpoint = f"http://{host}:{port}"
            admin = _connect(ks, "admin", "admin", ks.admin_password)
            service = admin.identity.create_service(type="load-balancer", name="octavia")
            admin.identity.create_endpoint(service_id=service.id, interface="public",
                                           url=endpoint, region_id="RegionOne")
            tenant = admin.identity.create_project(name="tenant", domain_id="default")
            password = "tenant-" + os.urandom(6).hex()
            user = admin.identity.create_user(name="tenant-user", password=password,
                                              domain_id="default")
            member = admin.identity.find_role("member")
            admin.identity.assign_project_role_to_user(tenant, user, member)
            yield {"ks": ks, "endpoint": endpoint, "admin": _connect(ks, "admin", "admin",
                                                                     ks.admin_password),
                   "tenant": _connect(ks, "tenant", "tenant-user", password),
                   "tenant_id": tenant.id}
        finally:
            server.stop()


def test_requests_without_a_valid_token_are_401(site: dict[str, Any]) -> None:
    url = f"{site['endpoint']}/v2/lbaas/loadbalancers"
    for headers in ({}, {"X-Auth-Token": "not-a-token"}, {"X-Project-Id": "admin"}):
        r = requests.get(url, headers=headers, timeout=30)
        assert r.status_code == 401
    # as Octavia's SkippingAuthProtocol: version discovery needs no token
    assert requests.get(f"{site['endpoint']}/", timeout=30).json()["versions"]


def test_projects_through_keystone_tokens(site: dict[str, Any]) -> None:
    admin, tenant = site["admin"], site["tenant"]
    vip = next(s.id for s in REGISTRY.subnets.values() if s.network_name == "vip")
    mine = tenant.load_balancer.create_load_balancer(name="tenant-lb", vip_subnet_id=vip)
    assert mine.project_id == site["tenant_id"]
    theirs = admin.load_balancer.create_load_balancer(name="admin-lb", vip_subnet_id=vip)
    assert [lb.id for lb in tenant.load_balancer.load_balancers()] == [mine.id]
    with pytest.raises(openstack.exceptions.ForbiddenException):
        tenant.load_balancer.get_load_balancer(theirs.id)
    # Keystone's admin role sees every project, as Octavia's admin policy does
    assert {lb.id for lb in admin.load_balancer.load_balancers()} == {mine.id, theirs.id}
