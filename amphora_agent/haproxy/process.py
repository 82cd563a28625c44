"""How HAProxy is validated and run for one load balancer.

Validation runs the real binary with exactly the arguments the service will
use (same ``-f`` files, same ``-L`` peer name), so a config that passes
``haproxy -c`` here is the config that starts.
"""

from __future__ import annotations

import grp
import logging
import os
import signal
import subprocess
from pathlib import Path

from amphora_agent import fileutil
from amphora_agent.haproxy import cfgfile
from amphora_agent.haproxy.layout import LbLayout
from amphora_agent.services import ServiceSpec
from amphora_contract import vrrp as vrrp_paths
from amphora_contract.peers import peer_name

CHECK_TIMEOUT = 60
LOG = logging.getLogger(__name__)


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


def ensure_exec_link(haproxy_cmd: str, layout: LbLayout) -> Path:
    """``{base_path}/{lb_id}/hap-…`` -> the HAProxy binary (replaced atomically)."""
    link = Path(vrrp_paths.haproxy_exec_link(str(layout.base_path), layout.lb_id))
    if os.path.islink(link) and os.readlink(link) == haproxy_cmd:
        return link
    fileutil.ensure_dir(link.parent)
    tmp = link.with_name(f".{link.name}.new")
    fileutil.remove(tmp)
    os.symlink(haproxy_cmd, tmp)
    os.replace(tmp, link)
    return link


def config_args(layout: LbLayout, config: Path, amphora_id: str) -> list[str]:
    return ["-f", str(config), "-f", str(layout.user_group_file), "-L", peer_name(amphora_id)]


def check(haproxy_cmd: str, layout: LbLayout, config: Path, amphora_id: str) -> tuple[bool, str]:
    """``haproxy -c`` with the service's own arguments; (ok, output)."""
    ensure_user_group_file(layout)
    proc = subprocess.run([haproxy_cmd, "-c", *config_args(layout, config, amphora_id)],
                          capture_output=True, check=False, timeout=CHECK_TIMEOUT)
    # HAProxy quotes offending config bytes back, and they need not be UTF-8
    output = (proc.stdout + proc.stderr).decode("utf-8", errors="replace").strip()
    return proc.returncode == 0, output


# File descriptors HAProxy needs beyond two per connection (listeners,
# sockets, checks, logs); a conservative allowance.
FD_RESERVE = 256


def maxconn_that_fits(limit_nofile: int) -> int:
    """The largest ``maxconn`` whose sockets fit under the open-file limit
    (each proxied connection holds a client and a server socket)."""
    return max(1, (limit_nofile - FD_RESERVE) // 2)


def maxconn_cap(config_text: str, limit_nofile: int | None) -> int | None:
    """``-n`` to pass when the config's global maxconn cannot fit, else None.

    HAProxy only warns when the limit is too low for ``maxconn`` and then
    fails connections with EMFILE under load; capping it makes it refuse the
    excess cleanly (queueing in the kernel) instead.
    """
    if not limit_nofile:
        return None
    words = cfgfile.global_setting(config_text, "maxconn")
    fit = maxconn_that_fits(limit_nofile)
    if words and words[0].isdigit() and int(words[0]) > fit:
        return fit
    return None


def service_spec(haproxy_cmd: str, layout: LbLayout, amphora_id: str, namespace: str,
                 limit_nofile: int | None) -> ServiceSpec:
    args = [*config_args(layout, layout.config, amphora_id), "-p", str(layout.pid_file),
            "-S", f"{layout.master_socket},mode,600"]
    # Run through a per-LB link so the process name is this amphora's own:
    # keepalived tracks it (amphora_contract/vrrp.py, docs/keepalived.md).
    argv0 = str(ensure_exec_link(haproxy_cmd, layout))
    cap = maxconn_cap(layout.config.read_text(errors="replace"), limit_nofile)
    if cap is not None:
        LOG.warning("maxconn of %s does not fit %d open files: capped at %d",
                    layout.lb_id, limit_nofile, cap)
        args += ["-n", str(cap)]
    return ServiceSpec(
        name=layout.service_name,
        description=f"HAProxy load balancer {layout.lb_id}",
        foreground=(argv0, "-Ws", *args),
        daemon=(argv0, "-W", "-D", *args),
        pid_file=str(layout.pid_file),
        namespace=namespace,
        reload_signal=signal.SIGUSR2,
        notify=True,
        limit_nofile=limit_nofile,
    )
