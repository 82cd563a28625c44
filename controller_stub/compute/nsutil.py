"""Namespace plumbing for the local fabric: create, wire, run in, and clear out namespaces.

Everything happens inside namespaces the fabric created; the host's own
namespace is only used to hold the ``/run/netns`` names.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns

from amphora_contract import netns

T = TypeVar("T")
IFA_F_NODAD = 0x02


def create(name: str) -> None:
    if not netns.exists(name):
        pyroute2_netns.create(name)
    with netns.entered(name), IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    # Links made here are fresh veths on a private bridge: skip duplicate
    # address detection so their IPv6 link-local addresses (which neighbour
    # discovery uses) are usable at once instead of after about a second.
    for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
        sysctl(name, key, "0")


def sysctl(name: str, key: str, value: str) -> None:
    """Set a sysctl inside namespace ``name`` (never the host's)."""
    with netns.entered(name), open("/proc/sys/" + key.replace(".", "/"), "w",
                                   encoding="ascii") as handle:
        handle.write(value)


def run_in(name: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``func`` in a thread that entered namespace ``name``; sockets it opens live there."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            with netns.entered(name):
                result["value"] = func(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            result["error"] = exc

    thread = threading.Thread(target=target, name=f"in-{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def pids_in(name: str) -> list[int]:
    """Processes whose network namespace is ``name``."""
    try:
        target = os.stat(netns.path(name))
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            st = os.stat(f"/proc/{entry}/ns/net")
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                found.append(int(entry))
    return found


def kill_all_in(name: str, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, every process left in namespace ``name``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [p for p in pids_in(name) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pids_in(name):
            time.sleep(0.05)


def crash(*names: str) -> None:
    """What a dying VM looks like: every process in the namespaces SIGKILLed at
    once (no clean shutdown), then the namespaces (and their links) gone."""
    for name in names:
        for pid in pids_in(name):
            if pid != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    for name in names:
        delete(name)


def fixed_mac(seed: str) -> str:
    """A locally administered unicast MAC derived from ``seed`` (stable per name)."""
    digest = hashlib.sha256(seed.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def delete(name: str) -> None:
    """Kill what runs in ``name`` and remove it; absent is fine."""
    if netns.exists(name):
        kill_all_in(name)
        pyroute2_netns.remove(name)
    elif os.path.lexists(netns.path(name)):
        os.unlink(netns.path(name))


def listed(prefix: str) -> list[str]:
    """Named namespaces starting with ``prefix``."""
    try:
        return sorted(n for n in os.listdir(netns.NETNS_RUN_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def add_addresses(ipr: IPRoute, index: int, addresses: list[tuple[str, int]]) -> None:
    for address, prefixlen in addresses:
        extra = {"flags": IFA_F_NODAD} if ":" in address else {}
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen, **extra)
