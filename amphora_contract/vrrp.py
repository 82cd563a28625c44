"""Where the agent keeps keepalived's files, fixed for both sides.

The renderer (``keepalived/``) names check scripts and this amphora's HAProxy
config by these rules; the agent accepts only script paths inside
:func:`check_script_dir` and runs HAProxy with :func:`haproxy_config` as its
first ``-f`` argument (docs/keepalived.md). The directory is Octavia's
``{base_path}/vrrp/`` so configs rendered by Octavia's controller work as-is.
"""

from __future__ import annotations

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
    """This amphora's HAProxy config for ``lb_id``; HAProxy's command line
    starts ``haproxy -f <this>``, which is what keepalived tracks."""
    return posixpath.join(base_path, lb_id, "haproxy.cfg")
