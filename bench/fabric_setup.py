"""A plugged amphora on the local fabric, for benchmarks."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from amphora_contract import agent_config
from controller_stub.compute.local import (
    Amphora,
    Endpoint,
    FabricAgentClient,
    LocalFabric,
    Port,
    network_body,
    vip_body,
)


@dataclass
class Bench:
    fabric: LocalFabric
    amphora: Amphora
    client: FabricAgentClient
    vip: Port
    member_port: Port
    members: list[Endpoint]
    user: Endpoint

    @property
    def base_path(self) -> Path:
        return Path(agent_config.load(self.amphora.config_file).base_path)


@contextlib.contextmanager
def plugged_amphora(members: int = 2, **amphora_kwargs: object) -> Iterator[Bench]:
    workdir = Path(tempfile.mkdtemp(prefix="ab-", dir="/tmp"))
    fabric = LocalFabric(workdir)
    try:
        amphora = fabric.create_amphora(**amphora_kwargs)  # type: ignore[arg-type]
        with fabric.client(amphora) as client:
            vip = fabric.hotplug_port(amphora, "vip")
            member_port = fabric.hotplug_port(amphora, "member")
            client.plug_vip(str(vip.ipv4), vip_body(vip))
            client.plug_network(network_body(member_port))
            backends = [fabric.create_member("member", name=f"member-{i + 1}")
                        for i in range(members)]
            user = fabric.create_client("client")
            yield Bench(fabric, amphora, client, vip, member_port, backends, user)
    finally:
        fabric.teardown()
        shutil.rmtree(workdir, ignore_errors=True)
