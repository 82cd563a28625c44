"""Controller-side helpers to describe a load balancer and render it for one
amphora, from what that amphora reports about itself."""

from __future__ import annotations

import uuid
from typing import Any

from controller_stub.client import AgentClient
from haproxy_templates import LoadBalancer, RenderOptions, Target, render


def target_for(client: AgentClient) -> Target:
    """Render for the amphora as it is: its HAProxy, CPUs, memory and fd limit."""
    info, details = client.info(), client.details()
    return Target(haproxy_version=info["haproxy_version"], cpu_count=details["cpu_count"],
                  memory_kb=details["memory"]["total"],
                  fd_limit=details["open_file_limit"]["hard"])


def http_document(*, amphora_id: str, vip: str, members: list[tuple[str, str]],
                  additional_vips: list[str] = (), port: int = 80,  # type: ignore[assignment]
                  health_path: str = "/health") -> dict[str, Any]:
    """An Octavia-style LB: one HTTP listener, one round-robin pool with an
    HTTP health monitor, members given as (member id, address) on port 80."""
    pool_id = str(uuid.uuid4())
    return {
        "id": str(uuid.uuid4()),
        "vip_address": vip,
        "additional_vips": [{"ip_address": address} for address in additional_vips],
        "topology": "SINGLE",
        "amphorae": [{"id": amphora_id, "role": "STANDALONE"}],
        "listeners": [{"id": str(uuid.uuid4()), "protocol": "HTTP", "protocol_port": port,
                       "default_pool_id": pool_id}],
        "pools": [{"id": pool_id, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "healthmonitor": {"id": str(uuid.uuid4()), "type": "HTTP", "delay": 1,
                                     "timeout": 1, "max_retries": 1, "max_retries_down": 2,
                                     "url_path": health_path},
                   "members": [{"id": member_id, "address": address, "protocol_port": 80}
                               for member_id, address in members]}],
    }


def render_for(client: AgentClient, document: dict[str, Any], *, amphora_id: str,
               base_path: str, cert_dir: str) -> str:
    return render(LoadBalancer.from_dict(document), amphora_id=amphora_id,
                  target=target_for(client),
                  options=RenderOptions(base_path=base_path, cert_dir=cert_dir))


def backend_name(document: dict[str, Any], listener_index: int = 0) -> str:
    listener = document["listeners"][listener_index]
    return f"{listener['default_pool_id']}:{listener['id']}"
