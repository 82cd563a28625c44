"""The controller and the agents it may meet: which agent the local driver
starts, how the controller names what an agent is, and the version-3
heartbeats it accepts only when told to (docs/upgrades.md)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from amphora_contract import heartbeat
from amphora_contract.heartbeat import HeartbeatError
from controller_stub.agent_launch import AgentLaunch
from controller_stub.controller import config, db
from controller_stub.controller.flows import agent_profile
from controller_stub.controller.health import HealthManager

KEY = "compat-master-key-0123456789"


def _venv(tmp_path: Path) -> Path:
    agent = tmp_path / "venv" / "bin" / "amphora-agent"
    agent.parent.mkdir(parents=True)
    agent.write_text("#!/bin/sh\n", encoding="utf-8")
    agent.chmod(0o755)
    return tmp_path / "venv"


def _load(tmp_path: Path, compute: str, health: str = "") -> config.ControllerConfig:
    path = tmp_path / "controller.conf"
    path.write_text(f"[compute]\n{compute}[health_manager]\n{health}", encoding="utf-8")
    return config.load(path)


def test_default_agent_is_the_controllers_own(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "")
    launch = AgentLaunch.parse(cfg.compute_agent_venv, cfg.compute_agent_kind)
    assert launch.launcher(tmp_path / "amp", "ns-hap") is None
    assert cfg.health.accept_v3 is False


def test_agent_of_another_release_and_octavias(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    cfg = _load(tmp_path, f"agent_venv = {venv}\n")
    launch = AgentLaunch.parse(cfg.compute_agent_venv, cfg.compute_agent_kind)
    assert launch.launcher(tmp_path / "amp", "ns-hap") == [str(venv / "bin" / "amphora-agent")]
    cfg = _load(tmp_path, f"agent_venv = {venv}\nagent_kind = octavia\n",
                "accept_v3_heartbeats = true\n")
    assert cfg.health.accept_v3 is True
    argv = AgentLaunch.parse(cfg.compute_agent_venv, cfg.compute_agent_kind).launcher(
        tmp_path / "amp", "ns-hap")
    assert argv is not None
    assert argv[:3] == ["unshare", "--mount", "--"]
    assert argv[3] == str(venv / "bin" / "python")
    assert argv[argv.index("--netns") + 1] == "ns-hap"
    assert argv[argv.index("--state") + 1] == str(tmp_path / "amp" / "octavia")
    assert argv[-1] == str(venv / "bin" / "amphora-agent")


@pytest.mark.parametrize(("compute", "message"), [
    ("agent_kind = nova\n", "[compute] agent_kind: one of amphora, octavia"),
    ("agent_kind = octavia\n", "[compute] agent_kind = octavia needs agent_venv"),
    ("agent_venv = relative/venv\n", "[compute] agent_venv: an absolute path"),
    ("agent_venv = /nonexistent-venv\n", "[compute] agent_venv: no bin/amphora-agent in"),
])
def test_bad_agent_choice_is_refused(tmp_path: Path, compute: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        _load(tmp_path, compute)
    assert str(refused.value).startswith(message)


def test_agent_profile_names_the_agent() -> None:
    info = {"hostname": "amp", "haproxy_version": "2.6.12", "api_version": "1.0"}
    ours = {"api_version": "1.0", "extensions": ["runtime-members", "metrics"]}
    assert agent_profile({**info, "agent_version": "0.2.0"}, ours) == {
        "kind": "amphora", "api_version": "1.0", "agent_version": "0.2.0",
        "extensions": ["metrics", "runtime-members"]}
    assert agent_profile(info, ours)["agent_version"] is None  # 0.1.0
    assert agent_profile(info, {"api_version": "1.0"}) == {
        "kind": "octavia", "api_version": "1.0", "agent_version": None, "extensions": []}


def _manager(tmp_path: Path, accept_v3: bool) -> HealthManager:
    cfg = _load(tmp_path, "", f"enabled = true\nheartbeat_key = {KEY}\n"
                              f"accept_v3_heartbeats = {str(accept_v3).lower()}\n")
    return HealthManager(db.open_store(f"sqlite:///{tmp_path}/state.db"), cfg.health,
                         namespace=None, bind_ip="127.0.0.1", start_failover=lambda lb, amp: True)


def test_version_3_heartbeats_with_the_master_key_when_accepted(tmp_path: Path) -> None:
    verifier = _manager(tmp_path, accept_v3=True).listener.verifier
    amphora_id = str(uuid.uuid4())
    body = heartbeat.message(amphora_id, 1, {}, {})
    assert verifier.verify(heartbeat.wrap(body, KEY))["id"] == amphora_id
    assert verifier.verify(heartbeat.wrap_v4(
        body, heartbeat.derive_amphora_key(KEY, amphora_id)))["id"] == amphora_id


def test_version_3_heartbeats_refused_by_default(tmp_path: Path) -> None:
    verifier = _manager(tmp_path, accept_v3=False).listener.verifier
    amphora_id = str(uuid.uuid4())
    body = heartbeat.message(amphora_id, 1, {}, {})
    with pytest.raises(HeartbeatError, match="version 3 is not accepted"):
        verifier.verify(heartbeat.wrap(body, KEY))
    assert verifier.verify(heartbeat.wrap_v4(
        body, heartbeat.derive_amphora_key(KEY, amphora_id)))["id"] == amphora_id
