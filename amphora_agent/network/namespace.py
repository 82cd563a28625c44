"""The HAProxy namespace: created once (idempotently) and tuned for a load balancer.

Sysctls are written through ``/proc/sys`` while this thread is inside the
namespace, so only per-namespace values change: the host's (and the agent's
own namespace's) settings are never touched. Keys the kernel keeps global
(read-only outside the initial namespace) or lacks (no conntrack module) are
skipped, not fatal.
"""

from __future__ import annotations

import errno
import logging
import os
import threading

from amphora_agent.network import netlink
from amphora_contract import netns

LOG = logging.getLogger(__name__)

# (key, value, required). Required keys are what the data path depends on:
# binding a VIP keepalived has not brought up yet, forwarding for LVS, ARP
# answered only for addresses on the asking interface, loose reverse-path
# filtering so replies may leave by the VIP's own table.
SYSCTLS: tuple[tuple[str, str, bool], ...] = (
    ("net.ipv4.ip_forward", "1", True),
    ("net.ipv4.ip_nonlocal_bind", "1", True),
    ("net.ipv4.conf.all.arp_announce", "2", True),
    ("net.ipv4.conf.default.arp_announce", "2", True),
    ("net.ipv4.conf.all.arp_ignore", "1", True),
    ("net.ipv4.conf.default.arp_ignore", "1", True),
    ("net.ipv4.conf.all.rp_filter", "2", True),
    ("net.ipv4.conf.default.rp_filter", "2", True),
    ("net.ipv6.ip_nonlocal_bind", "1", False),
    ("net.ipv6.conf.all.forwarding", "1", False),
    ("net.ipv6.conf.default.accept_ra", "0", False),
    ("net.ipv6.conf.default.autoconf", "0", False),
    # NICs moved in are ours alone on their port: their link-local addresses
    # must serve neighbour discovery as soon as the VIP is plugged
    ("net.ipv6.conf.all.accept_dad", "0", False),
    ("net.ipv6.conf.default.accept_dad", "0", False),
    ("net.core.somaxconn", "65534", False),
    ("net.ipv4.tcp_max_syn_backlog", "100000", False),
    ("net.ipv4.tcp_tw_reuse", "1", False),
    ("net.ipv4.tcp_fin_timeout", "5", False),
    ("net.ipv4.ip_local_port_range", "1025 65534", False),
    ("net.netfilter.nf_conntrack_max", "1000000", False),
    ("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "5", False),
    ("net.netfilter.nf_conntrack_tcp_timeout_fin_wait", "5", False),
)

_LOCK = threading.Lock()


def _write_sysctl(key: str, value: str) -> bool:
    """Write one sysctl for the calling thread's namespace; False if not settable here."""
    target = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(target, "w", encoding="ascii") as handle:
            handle.write(value)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EINVAL):
            return False
        raise
    return True


def tune(name: str) -> list[str]:
    """Apply :data:`SYSCTLS` inside ``name``; returns the keys that could not be set."""
    skipped = []
    with netns.entered(name):
        for key, value, required in SYSCTLS:
            if _write_sysctl(key, value):
                continue
            if required:
                raise OSError(f"cannot set {key} in namespace {name}")
            skipped.append(key)
    if skipped:
        LOG.debug("namespace %s: sysctls not settable per namespace: %s", name,
                  ", ".join(skipped))
    return skipped


def ensure(name: str) -> bool:
    """Create namespace ``name`` if missing, bring ``lo`` up and tune it.

    Returns whether it was created. Safe to call on every plug and at boot.
    """
    with _LOCK:
        created = False
        if not netns.exists(name):
            try:
                netlink.netns.create(name)
            except FileExistsError:
                pass
            else:
                created = True
        with netns.entered(name), netlink.IPRoute() as ipr:
            lo = ipr.link_lookup(ifname="lo")
            if lo:
                ipr.link("set", index=lo[0], state="up")
        tune(name)  # every time: idempotent, and repairs a namespace made elsewhere
        if created:
            LOG.info("created namespace %s", name)
        return created


def remove(name: str) -> None:
    """Delete namespace ``name`` (tests and teardown); absent is fine."""
    if netns.exists(name):
        netlink.netns.remove(name)
    elif os.path.lexists(netns.path(name)):
        os.unlink(netns.path(name))
