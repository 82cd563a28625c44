"""Where the agent keeps keepalived's files, fixed for both sides.

The renderer (``keepalived/``) names check scripts and this amphora's HAProxy
config by these rules; the agent accepts only script paths inside
:func:`check_script_dir` and runs each HAProxy through the link
:func:`haproxy_exec_link`, so its process name is :func:`haproxy_process_name`
(docs/keepalived.md). The directory is Octavia's
``{base_path}/vrrp/`` so configs rendered by Octavia's controller work as-is.
"""

from __future__ import annotations

import hashlib
import posixpath

VRRP_DIR = "vrrp"
CONFIG_NAME = "octavia-keepalived.conf"
# Octavia's templates name this script; the agent installs it.
CHECK_SCRIPT_NAME = "check_script.sh"
LVS_DIR = "lvs"
LVS_CHECK_DIR = "check"


def check_script_dir(base_path: str) -> str:
    """The only directory an uploaded keepalived config may run scripts from."""
    return posixpath.join(base_path, VRRP_DIR)


def check_script(base_path: str) -> str:
    return posixpath.join(check_script_dir(base_path), CHECK_SCRIPT_NAME)


def lvs_check_dir(base_path: str) -> str:
    """Where UDP (LVS) listener configs may run their member checks from."""
    return posixpath.join(base_path, LVS_DIR, LVS_CHECK_DIR)


def haproxy_config(base_path: str, lb_id: str) -> str:
    """This amphora's HAProxy config for ``lb_id``."""
    return posixpath.join(base_path, lb_id, "haproxy.cfg")


def haproxy_process_name(base_path: str, lb_id: str) -> str:
    """The process name (``/proc/PID/comm``, 15 characters) of this amphora's
    HAProxy for ``lb_id``: unique per base_path and LB, so keepalived's
    ``vrrp_track_process`` matches only this amphora's HAProxy even when
    several amphorae share a host's process table (embedded mode). The name
    survives HAProxy's master re-exec on reload, which re-executes argv[0]."""
    digest = hashlib.sha256(f"{base_path}\0{lb_id}".encode()).hexdigest()
    return f"hap-{digest[:11]}"


def haproxy_exec_link(base_path: str, lb_id: str) -> str:
    """The symlink to the HAProxy binary the agent executes for ``lb_id``
    (the kernel names a process after the file it executed)."""
    return posixpath.join(base_path, lb_id, haproxy_process_name(base_path, lb_id))
