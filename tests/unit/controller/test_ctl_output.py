"""amphora-ctl's pieces that need no API: KEY=VALUE parsing, the one-line error, and
--wait's status following over a sequence of answers."""

from __future__ import annotations

from typing import Any

import pytest
from openstack import exceptions

from controller_stub.cli import describe
from controller_stub.commands import output
from controller_stub.commands.lbaas import pairs


def test_pairs_are_json_when_they_parse() -> None:
    assert pairs(["weight=3", "admin_state_up=false", "name=web", "rules=[]", "x="]) == {
        "weight": 3, "admin_state_up": False, "name": "web", "rules": [], "x": ""}
    with pytest.raises(ValueError, match="expected KEY=VALUE, got 'oops'"):
        pairs(["oops"])


def test_errors_are_one_line_with_the_status() -> None:
    exc = exceptions.HttpException(message="Conflict", details="Load Balancer X is\nimmutable",
                                   http_status=409)
    assert describe(exc) == "Load Balancer X is immutable (HTTP 409)"
    assert describe(ValueError("no API endpoint:\n  set one")) == "no API endpoint: set one"


def _answers(*statuses: str | None) -> Any:
    seq = iter(statuses)

    def poll() -> dict[str, Any] | None:
        status = next(seq)
        return None if status is None else {"id": "x", "provisioning_status": status,
                                            "status_reason": "boot failed"}
    return poll


def test_follow_shows_each_status_once(capsys: pytest.CaptureFixture[str]) -> None:
    done = output.follow("lb x", _answers("PENDING_UPDATE", "PENDING_UPDATE", "ACTIVE"),
                         timeout=10, interval=0, initial="PENDING_CREATE")
    assert done is not None and done["provisioning_status"] == "ACTIVE"
    assert capsys.readouterr().err.split("\n")[:3] == [
        "lb x: PENDING_CREATE", "lb x: PENDING_UPDATE", "lb x: ACTIVE"]
    assert output.follow("lb x", _answers("PENDING_DELETE", None), timeout=10, interval=0,
                         deleting=True) is None
    with pytest.raises(RuntimeError, match="lb x went to ERROR: boot failed"):
        output.follow("lb x", _answers("ERROR"), timeout=10, interval=0)
