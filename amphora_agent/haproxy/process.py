"""How HAProxy is validated and run for one load balancer.

Validation runs the real binary with exactly the arguments the service will
use (same ``-f`` files, same ``-L`` peer name), so a config that passes
``haproxy -c`` here is the config that starts.
"""

from __future__ import annotations

import grp
import signal
import subprocess
from pathlib import Path

from amphora_agent import fileutil
from amphora_agent.haproxy.layout import LbLayout
from amphora_agent.services import ServiceSpec

CHECK_TIMEOUT = 60


def peer_name(amphora_id: str) -> str:
    from haproxy_templates import peer_name as derive

    return derive(amphora_id)


def ensure_user_group_file(layout: LbLayout) -> Path:
    path = layout.user_group_file
    if not path.exists():
        group = "nogroup"
        try:
            grp.getgrnam(group)
        except KeyError:
            group = "nobody"
        fileutil.atomic_write(path, f"global\n    group {group}\n".encode(), mode=0o644)
    return path


def config_args(layout: LbLayout, config: Path, amphora_id: str) -> list[str]:
    return ["-f", str(config), "-f", str(layout.user_group_file), "-L", peer_name(amphora_id)]


def check(haproxy_cmd: str, layout: LbLayout, config: Path, amphora_id: str) -> tuple[bool, str]:
    """``haproxy -c`` with the service's own arguments; (ok, output)."""
    ensure_user_group_file(layout)
    proc = subprocess.run([haproxy_cmd, "-c", *config_args(layout, config, amphora_id)],
                          capture_output=True, text=True, check=False, timeout=CHECK_TIMEOUT)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def service_spec(haproxy_cmd: str, layout: LbLayout, amphora_id: str, namespace: str,
                 limit_nofile: int | None) -> ServiceSpec:
    args = [*config_args(layout, layout.config, amphora_id), "-p", str(layout.pid_file),
            "-S", f"{layout.master_socket},mode,600"]
    return ServiceSpec(
        name=layout.service_name,
        description=f"HAProxy load balancer {layout.lb_id}",
        foreground=(haproxy_cmd, "-Ws", *args),
        daemon=(haproxy_cmd, "-W", "-D", *args),
        pid_file=str(layout.pid_file),
        namespace=namespace,
        reload_signal=signal.SIGUSR2,
        notify=True,
        limit_nofile=limit_nofile,
    )
