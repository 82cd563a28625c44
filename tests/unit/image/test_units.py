"""Boot-time units in the elements: every start is bounded, the agent is supervised."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from .conftest import ELEMENTS

UNITS = sorted(ELEMENTS.glob("*/static/etc/systemd/system/*.service"))


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def _seconds(value: str) -> int:
    assert re.fullmatch(r"[1-9][0-9]*", value), f"not a positive number of seconds: {value!r}"
    return int(value)


def test_the_boot_units_are_all_found() -> None:
    names = {path.name for path in UNITS}
    assert {"amphora-agent.service", "amphora-netns.service", "amphora-provision.service",
            "amphora-cpu-pinning.service", "amphora-journal-export.service"} <= names


def test_every_oneshot_and_notify_unit_has_a_bounded_start() -> None:
    for path in UNITS:
        service = _unit(path)["Service"]
        if service.get("Type", "simple") in ("oneshot", "notify"):
            assert 0 < _seconds(service["TimeoutStartSec"]) <= 120, path.name


def test_agent_readiness_and_watchdog_are_supervised_by_systemd() -> None:
    unit = _unit(ELEMENTS / "amphora-agent/static/etc/systemd/system/amphora-agent.service")
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "all"  # READY/WATCHDOG come from the worker
    assert 0 < _seconds(service["WatchdogSec"]) <= 30
    assert service["Restart"] == "always"
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"


def test_netns_restore_cannot_hold_the_agent_back() -> None:
    unit = _unit(ELEMENTS / "amphora-agent/static/etc/systemd/system/amphora-netns.service")
    assert unit["Service"]["ExecStart"].endswith("amphora-interface up all")
    assert _seconds(unit["Service"]["TimeoutStartSec"]) <= 60
    agent = _unit(ELEMENTS / "amphora-agent/static/etc/systemd/system/amphora-agent.service")
    # Wants, not Requires: a failed or timed-out restore still lets the agent start.
    assert "amphora-netns.service" in agent["Unit"]["Wants"]
    assert "amphora-netns.service" not in agent["Unit"].get("Requires", "")


def test_journal_export_is_pulled_in_only_by_its_debug_port() -> None:
    rule = (ELEMENTS / "amphora-agent/static/etc/udev/rules.d/60-amphora-journal.rules"
            ).read_text()
    assert 'ATTR{name}=="org.amphora.journal.0"' in rule
    assert 'ENV{SYSTEMD_WANTS}+="amphora-journal-export.service"' in rule
    unit = _unit(ELEMENTS / "amphora-agent/static/etc/systemd/system/"
                 "amphora-journal-export.service")
    assert "Install" not in unit  # never enabled on its own
    assert unit["Service"]["StandardOutput"] == "file:/dev/virtio-ports/org.amphora.journal.0"
    assert "--unit=amphora-agent.service" in unit["Service"]["ExecStart"]
