"""The agent-config schema has one writer and one parser, and they agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from amphora_contract.agent_config import AgentSettings, ConfigError, HeartbeatTarget, parse


def _settings(tmp_path: Path, **amphora: str) -> AgentSettings:
    ca, cert = tmp_path / "ca.pem", tmp_path / "server.pem"
    ca.write_text("x")
    cert.write_text("x")
    return AgentSettings(
        amphora_id="0b1e8d1c-0d2b-4f62-9c2b-29e0f4e1b7a3", base_path="/srv/amp/lib",
        base_cert_dir="/srv/amp/lib/certs", bind_host="2001:db8::5", bind_port=19443,
        agent_server_ca=str(ca), agent_server_cert=str(cert),
        agent_server_network_dir="/srv/amp/interfaces",
        controllers=["192.0.2.10:5555", "[2001:db8::10]:5556"], heartbeat_interval=3,
        heartbeat_key="k3y", topology="ACTIVE_STANDBY", debug=True, amphora=dict(amphora))


def test_every_value_the_controller_writes_is_what_the_agent_reads(tmp_path: Path) -> None:
    settings = _settings(tmp_path, namespace="amp-x1", service_manager="direct", threads="8")
    config = parse(settings.render())
    assert (config.amphora_id, config.base_path, config.base_cert_dir) == (
        "0b1e8d1c-0d2b-4f62-9c2b-29e0f4e1b7a3", "/srv/amp/lib", "/srv/amp/lib/certs")
    assert (config.bind_host, config.bind_port) == ("2001:db8::5", 19443)
    assert (config.agent_server_ca, config.agent_server_cert) == (
        settings.agent_server_ca, settings.agent_server_cert)
    assert config.agent_server_network_dir == "/srv/amp/interfaces"
    assert config.controller_ip_port_list == (HeartbeatTarget("192.0.2.10", 5555),
                                              HeartbeatTarget("2001:db8::10", 5556))
    assert (config.heartbeat_interval, config.heartbeat_key) == (3, "k3y")
    assert (config.loadbalancer_topology, config.debug) == ("ACTIVE_STANDBY", True)
    assert (config.namespace, config.service_manager, config.threads) == (
        "amp-x1", "direct", 8)


def test_the_writer_refuses_a_key_the_agent_does_not_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[amphora\] heartbeat_keys: unknown key"):
        _settings(tmp_path, heartbeat_keys="typo").render()


@pytest.mark.parametrize("value", ["amp\nheartbeat_key = stolen", "amp\r", "amp\x00"])
def test_the_writer_refuses_a_value_that_could_add_a_line(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[amphora\] namespace: value has control"):
        _settings(tmp_path, namespace=value).render()


def test_defaults_match_on_both_sides() -> None:
    written = AgentSettings(amphora_id="0b1e8d1c-0d2b-4f62-9c2b-29e0f4e1b7a3").sections()
    assert written["haproxy_amphora"] == {"base_path": "/var/lib/octavia",
                                          "base_cert_dir": "/var/lib/octavia/certs",
                                          "bind_host": "::", "bind_port": "9443"}
    assert written["amphora_agent"]["agent_server_ca"] == "/etc/octavia/certs/client_ca.pem"
    assert written["amphora_agent"]["agent_server_cert"] == "/etc/octavia/certs/server.pem"


def test_haproxy_cmd_is_written_only_when_set_and_must_exist(tmp_path: Path) -> None:
    binary = tmp_path / "haproxy-3.0"
    binary.write_text("#!/bin/sh\n")
    settings = _settings(tmp_path)
    assert "haproxy_cmd" not in settings.sections()["haproxy_amphora"]
    assert parse(settings.render()).haproxy_cmd == "/usr/sbin/haproxy"
    settings.haproxy_cmd = str(binary)
    assert parse(settings.render()).haproxy_cmd == str(binary)
    settings.haproxy_cmd = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match="haproxy_cmd"):
        parse(settings.render())
