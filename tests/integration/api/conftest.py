"""One controller with its API on a local fabric per test module: a fabric with
two members and a client, ``amphora-controller``'s Service in-process with the
API on a free loopback port, and openstacksdk connected to it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openstack
import pytest
import requests

from controller_stub.compute.local import LocalFabric
from controller_stub.controller.daemon import Service
from tests.integration.controller.conftest import Site

pytestmark = pytest.mark.root


@dataclass
class Stack:
    site: Site
    service: Service
    endpoint: str  # http://127.0.0.1:PORT, as a catalog lists Octavia's

    def subnet(self, network: str, version: int = 4) -> str:
        subnets = requests.get(f"{self.endpoint}/v2.0/subnets", timeout=10).json()
        return next(s["id"] for s in subnets["subnets"] if s["name"] == f"{network}-ipv{version}")

    def network(self, name: str) -> str:
        networks = requests.get(f"{self.endpoint}/v2.0/networks?name={name}", timeout=10)
        return networks.json()["networks"][0]["id"]

    def sdk(self, **auth: Any) -> openstack.connection.Connection:
        """openstacksdk against the API; no auth unless ``auth`` names a token."""
        if auth:
            return openstack.connection.Connection(
                auth_type="admin_token", auth={"endpoint": self.endpoint, **auth},
                load_balancer_endpoint_override=self.endpoint)
        return openstack.connection.Connection(
            auth_type="none", auth={"endpoint": self.endpoint},
            load_balancer_endpoint_override=self.endpoint)


def make_site(extra_api: str = "") -> Iterator[tuple[Site, Path]]:
    workdir = Path(f"/tmp/ampa-{os.urandom(3).hex()}")
    fabric = LocalFabric(workdir)
    try:
        fabric.save()
        members = [fabric.create_member("member", name=f"m{i}") for i in (1, 2)]
        yield Site(fabric, members, fabric.create_client("client"), workdir), workdir
    finally:
        fabric.teardown()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    for site, workdir in make_site():
        config = site.config(f"sqlite:///{workdir}/state.db", lease=10.0,
                             api="bind_port = 0\ndefault_project = demo\n",
                             extra="[health_manager]\nenabled = true\nbind_port = 0\n"
                                   "heartbeat_key = api-tests-heartbeat-key\n"
                                   "heartbeat_interval = 1\n")
        from controller_stub.controller import config as config_mod

        with Service(config_mod.load(config)) as service:
            host, port = service.api_address
            yield Stack(site, service, f"http://{host}:{port}")
