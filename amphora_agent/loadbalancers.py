"""Where each load balancer's files live, and what is installed.

Layout (agent-api.md): ``{base_path}/{lb_id}/haproxy.cfg`` plus its sockets,
pid and state files beside it.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

_FRONTEND_RE = re.compile(r"^\s*frontend\s+(\S+)", re.MULTILINE)


def service_name(lb_id: str) -> str:
    return f"haproxy-{lb_id}"


def config_path(base_path: str, lb_id: str) -> Path:
    return Path(base_path) / lb_id / "haproxy.cfg"


def installed(base_path: str) -> list[str]:
    """LB ids with an installed config, sorted."""
    try:
        names = os.listdir(base_path)
    except FileNotFoundError:
        return []
    ids = []
    for name in names:
        try:
            if str(uuid.UUID(name)) != name:
                continue
        except ValueError:
            continue
        if config_path(base_path, name).is_file():
            ids.append(name)
    return sorted(ids)


def listener_ids(base_path: str, lb_id: str) -> list[str]:
    """Frontend names in an installed config (Octavia names frontends by listener id)."""
    try:
        text = config_path(base_path, lb_id).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return _FRONTEND_RE.findall(text)
