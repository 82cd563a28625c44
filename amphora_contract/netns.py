"""Enter a network namespace from the calling thread only.

``setns(2)`` on a network namespace changes just the calling thread, so a
request thread can read counters or drive netlink inside the amphora's
namespace without forking a helper process (pyroute2's NetNS does), which is
what keeps ``/details`` and plugging fast.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with this thread in namespace ``name``; always switch back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def interface_counters(name: str) -> dict[str, dict[str, int]]:
    """``{ifname: {network_tx, network_rx}}`` (bytes) for interfaces in ``name``."""
    if not exists(name):
        return {}
    with entered(name), open("/proc/thread-self/net/dev", encoding="ascii") as handle:
        lines = handle.readlines()[2:]
    counters = {}
    for line in lines:
        ifname, _, rest = line.partition(":")
        ifname = ifname.strip()
        if ifname == "lo":
            continue
        fields = rest.split()
        counters[ifname] = {"network_rx": int(fields[0]), "network_tx": int(fields[8])}
    return counters
