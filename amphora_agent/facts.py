"""The bodies of ``/1.0/info`` and ``/1.0/details``.

The controller sizes ``maxconn``, ``nbthread`` and TLS caches from
``/details``, so every figure is read fresh from /proc, except package
versions which only change with dpkg (see :mod:`sysinfo`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amphora_agent import sysinfo
from amphora_contract import api, netns

if TYPE_CHECKING:
    from amphora_agent.app import Agent

API_VERSION = api.API_VERSION


def info(agent: Agent) -> dict[str, Any]:
    versions = sysinfo.package_versions(agent.config.haproxy_cmd)
    return {
        "hostname": sysinfo.hostname(),
        "haproxy_version": versions["haproxy"],
        "api_version": API_VERSION,
        "keepalived_version": versions["keepalived"],
        "ipvsadm_version": versions["ipvsadm"],
        # ours: the agent's release (Octavia's agent and releases before 0.2 omit it)
        "agent_version": sysinfo.agent_version(),
    }


def details(agent: Agent) -> dict[str, Any]:
    config = agent.config
    versions = sysinfo.package_versions(config.haproxy_cmd)
    running, listeners = agent.loadbalancers.status()
    return {
        "hostname": sysinfo.hostname(),
        "haproxy_version": versions["haproxy"],
        "api_version": API_VERSION,
        "networks": netns.interface_counters(config.namespace),
        "active": True,
        "haproxy_count": running,
        "cpu_count": sysinfo.cpu_count(),
        "cpu": sysinfo.cpu_times(),
        "memory": sysinfo.memory_kb(),
        "disk": sysinfo.disk_bytes(config.base_path),
        "load": sysinfo.load_average(),
        "active_tuned_profiles": sysinfo.active_tuned_profiles(),
        "topology": config.loadbalancer_topology,
        "topology_status": "OK",
        "listeners": sorted(entry["uuid"] for entry in listeners),
        "packages": {},
        "lvs_listener_process_count": 0,
        "keepalived_version": versions["keepalived"],
        "ipvsadm_version": versions["ipvsadm"],
        # ours: what the controller needs to size HAProxy for this amphora
        "open_file_limit": sysinfo.open_file_limit(),
        "amphora_id": config.amphora_id,
    }
