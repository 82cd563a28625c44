"""Where one load balancer's files live: ``{base_path}/{lb_id}/``."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

USER_GROUP_FILE = "haproxy-default-user-group.conf"


@dataclass(frozen=True)
class LbLayout:
    base_path: Path
    lb_id: str

    @property
    def directory(self) -> Path:
        return self.base_path / self.lb_id

    @property
    def config(self) -> Path:
        return self.directory / "haproxy.cfg"

    @property
    def last_good(self) -> Path:
        """The last config that HAProxy ran with; the rollback target."""
        return self.directory / "haproxy.cfg.last-good"

    @property
    def amphora_id_file(self) -> Path:
        """The amphora id the config was uploaded for (it names the peer)."""
        return self.directory / "amphora-id"

    @property
    def pid_file(self) -> Path:
        return self.directory / "haproxy.pid"

    @property
    def master_socket(self) -> Path:
        return self.directory / "master.sock"

    @property
    def heartbeat_held(self) -> Path:
        """The worker pids the heartbeat process holds (amphora_agent/health.py)."""
        return self.directory / "heartbeat-held"

    @property
    def prometheus_socket(self) -> Path:
        """Where a config may bind HAProxy's Prometheus exporter for the agent's
        /1.0/ext/metrics (docs/agent.md, "Metrics")."""
        return self.directory / "prometheus.sock"

    @property
    def lock_file(self) -> Path:
        return self.directory / ".lock"

    @property
    def user_group_file(self) -> Path:
        """Extra ``-f`` file, as Octavia's agent passes it: configs rendered by
        Octavia leave ``group`` to this file."""
        return self.base_path / USER_GROUP_FILE

    @property
    def service_name(self) -> str:
        return f"haproxy-{self.lb_id}"


def installed_lb_ids(base_path: Path) -> list[str]:
    """LB ids with an installed config, sorted."""
    try:
        names = os.listdir(base_path)
    except FileNotFoundError:
        return []
    ids = []
    for name in names:
        try:
            canonical = str(uuid.UUID(name)) == name
        except ValueError:
            continue
        if canonical and LbLayout(base_path, name).config.is_file():
            ids.append(name)
    return sorted(ids)
