"""pyroute2, imported on first use.

pyroute2 costs about 22 MiB per process once imported (it loads its whole
netlink family tree). The gunicorn master, the heartbeat sender and an idle
worker never touch netlink; only plugging, VRRP guarding and the interface
helper do. Importing it here, lazily, keeps it out of every process that
does not need it, which is most of the agent's idle memory budget.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "IPRoute": ("pyroute2", "IPRoute"),
    "NetlinkError": ("pyroute2.netlink.exceptions", "NetlinkError"),
    "netns": ("pyroute2", "netns"),
}


def __getattr__(name: str) -> Any:
    """``netlink.IPRoute`` and friends resolve (and import pyroute2) on first access."""
    try:
        module, attribute = _NAMES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value
