"""``auth_strategy = static`` over the real server (cheroot) with openstacksdk's
token auth: a valid token's project owns what it creates; no or a wrong token
is a 401."""

from __future__ import annotations

import os
from collections.abc import Iterator

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

REGISTRY = NetworkRegistry(DEFAULT_NETWORKS)
TOKEN = "static-" + os.urandom(12).hex()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("static")
    tokens = workdir / "tokens"
    fd = os.open(tokens, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, f"{TOKEN} team-a\n".encode())
    os.close(fd)
    sessions = db.open_store(f"sqlite:///{workdir}/state.db")
    controller = Controller(sessions, StaticImage("img", {"haproxy_version": "2.6.12",
                                                          "openssl_version": "3.0.11"}))
    app = create_app(controller, REGISTRY)
    app.wsgi_app = auth.wrap(app.wsgi_app, "static",  # type: ignore[method-assign]
                             tokens=auth.load_tokens(tokens))
    server = ApiServer(app, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{server.address[1]}"
    finally:
        server.stop()


def _sdk(endpoint: str, token: str) -> openstack.connection.Connection:
    return openstack.connection.Connection(
        auth_type="admin_token", auth={"endpoint": endpoint, "token": token},
        load_balancer_endpoint_override=endpoint)


def test_static_tokens_with_openstacksdk(endpoint: str) -> None:
    conn = _sdk(endpoint, TOKEN)
    vip = next(s.id for s in REGISTRY.subnets.values() if s.network_name == "vip")
    lb = conn.load_balancer.create_load_balancer(name="a", vip_subnet_id=vip)
    assert lb.project_id == "team-a"
    assert [x.id for x in conn.load_balancer.load_balancers()] == [lb.id]
    with pytest.raises(openstack.exceptions.HttpException) as raised:
        list(_sdk(endpoint, "wrong-token-0123456789").load_balancer.load_balancers())
    assert raised.value.status_code == 401
    r = requests.get(f"{endpoint}/v2/lbaas/loadbalancers", timeout=10)
    assert r.status_code == 401
    assert r.json()["faultcode"] == "Client"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # the version document needs no token (clients discover the API with it)
    assert requests.get(f"{endpoint}/", timeout=10).json()["versions"]
