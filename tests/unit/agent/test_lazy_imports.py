"""The agent's master and its idle worker stay small: pyroute2 (~22 MiB) and
cryptography (~16 MiB) load only when a plug or a certificate rotation needs
them (amphora_agent/network/netlink.py, amphora_agent/certcheck.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pyroute2", "cryptography")


def _loaded_after(statement: str) -> set[str]:
    probe = (f"import sys, json\n{statement}\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True).stdout
    return set(json.loads(out))


def test_server_and_app_import_without_netlink_or_x509() -> None:
    loaded = _loaded_after("import amphora_agent.server, amphora_agent.app")
    assert "amphora_agent" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded.intersection(HEAVY))


def test_heartbeat_sender_imports_without_netlink_or_x509() -> None:
    loaded = _loaded_after("import amphora_agent.heartbeat_service")
    assert loaded.isdisjoint(HEAVY), sorted(loaded.intersection(HEAVY))


def test_netlink_names_resolve_on_first_use() -> None:
    loaded = _loaded_after("from amphora_agent.network import netlink, links\n"
                           "assert netlink.IPRoute.__module__.startswith('pyroute2')\n"
                           "assert issubclass(netlink.NetlinkError, Exception)")
    assert "pyroute2" in loaded


def test_unknown_netlink_name_is_an_attribute_error() -> None:
    from amphora_agent.network import netlink

    with pytest.raises(AttributeError, match="NoSuchThing"):
        netlink.NoSuchThing  # noqa: B018
