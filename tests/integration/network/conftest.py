"""Fixtures on the real local fabric; every namespace and process goes away, also on failure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from controller_stub.compute import nsutil
from controller_stub.compute.local import (
    Amphora,
    Endpoint,
    FabricAgentClient,
    Port,
    created_prefixes,
)
from controller_stub.local_agent import short_tmpdir
from tests.support.fabric import LocalFabric, network_body, vip_body


def _our_processes(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{pid}: {cmdline[:200]}")
    return found


@pytest.fixture(scope="session", autouse=True)
def no_leftovers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the suite: no namespace of this run's fabrics, no agent or member left.

    Only this process's fabrics (prefix ``ampx`` + random hex) are checked, so
    a suite running concurrently on the same host does not interfere."""
    if os.geteuid() != 0:
        pytest.fail("network tests need root (namespaces, veth, nftables)")
    base = str(tmp_path_factory.getbasetemp())
    yield
    for prefix in created_prefixes():
        assert nsutil.listed(prefix) == []
        assert _our_processes(f"--fabric {prefix}") == []
    assert _our_processes(base) == []


@pytest.fixture(scope="module")
def fabric(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFabric]:
    workdir = short_tmpdir()
    fab = LocalFabric(workdir)
    try:
        yield fab
    finally:
        fab.teardown()
        shutil.rmtree(workdir, ignore_errors=True)
    assert _our_processes(str(workdir)) == []
    assert fab.leftovers() == []


@pytest.fixture
def amphora(fabric: LocalFabric) -> Iterator[Amphora]:
    amp = fabric.create_amphora()
    try:
        yield amp
    finally:
        fabric.delete_amphora(amp)


@pytest.fixture
def client(fabric: LocalFabric, amphora: Amphora) -> Iterator[FabricAgentClient]:
    with fabric.client(amphora, retries=0) as agent_client:
        yield agent_client


@dataclass
class Plugged:
    amphora: Amphora
    client: FabricAgentClient
    vip: Port
    member_port: Port
    member: Endpoint
    user: Endpoint


@pytest.fixture
def plugged(fabric: LocalFabric, amphora: Amphora,
            client: FabricAgentClient) -> Iterator[Plugged]:
    """An amphora with its VIP (IPv4 + IPv6) and a member network plugged,
    a member on that network and a client namespace on the client network."""
    vip = fabric.hotplug_port(amphora, "vip")
    member_port = fabric.hotplug_port(amphora, "member")
    client.plug_vip(str(vip.ipv4), vip_body(vip))
    client.plug_network(network_body(member_port))
    member = fabric.create_member("member", name="member-1")
    user = fabric.create_client("client")
    try:
        yield Plugged(amphora, client, vip, member_port, member, user)
    finally:
        fabric.delete_endpoint(member)
        fabric.delete_endpoint(user)
