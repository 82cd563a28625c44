from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from controller_stub.local_agent import Pki, RunningAgent, short_tmpdir, start_agent
from tests.support import namespaces

VRRP_IP, PEER_IP, VIP = "192.0.2.11", "192.0.2.12", "192.0.2.100"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def lb_namespace() -> Iterator[str]:
    """The amphora's HAProxy namespace with its VRRP interface eth1 (a veth
    whose other end stays in the namespace: no peer answers, so keepalived
    becomes master on its own)."""
    with namespaces.namespace() as name:
        subprocess.run(["ip", "-n", name, "link", "add", "eth1", "type", "veth", "peer",
                        "name", "eth1p"], check=True)
        for dev in ("eth1", "eth1p"):
            subprocess.run(["ip", "-n", name, "link", "set", dev, "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", f"{VRRP_IP}/24", "dev", "eth1"],
                       check=True)
        yield name


@pytest.fixture
def agent(pki: Pki, lb_namespace: str) -> Iterator[RunningAgent]:
    root = short_tmpdir()
    running = start_agent(root, pki, amphora={"namespace": lb_namespace})
    yield running
    with running.client() as client:  # keepalived runs outside the namespace's pid list
        client.vrrp_action("stop")
    running.process.stop()
    shutil.rmtree(root, ignore_errors=True)
