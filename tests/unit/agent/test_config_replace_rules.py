"""PUT /1.0/config: no control characters anywhere, no change to immutable keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from amphora_agent.config import AgentConfig


def _put(client: FlaskClient, text: str) -> tuple[int, dict[str, object]]:
    response = client.put("/1.0/config", data=text.encode())
    return response.status_code, response.json


def _replace_line(text: str, key: str, value: str) -> str:
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{key} ="))
    lines[index] = f"{key} = {value}"
    return "\n".join(lines) + "\n"


IMMUTABLE = {
    "base_path": "[haproxy_amphora] base_path",
    "base_cert_dir": "[haproxy_amphora] base_cert_dir",
    "agent_server_ca": "[amphora_agent] agent_server_ca",
    "agent_server_cert": "[amphora_agent] agent_server_cert",
    "agent_server_network_dir": "[amphora_agent] agent_server_network_dir",
    "amphora_id": "[amphora_agent] amphora_id",
    "namespace": "[amphora] namespace",
}


@pytest.mark.parametrize("key", sorted(IMMUTABLE))
def test_immutable_keys_cannot_change(client: FlaskClient, agent_config: AgentConfig,
                                      key: str) -> None:
    original = Path(agent_config.config_file).read_text()
    same = _replace_line(original, "heartbeat_interval", "7")  # Octavia resends all keys
    assert _put(client, same)[0] == 202
    original = Path(agent_config.config_file).read_text()
    assert original == same
    new_value = {"amphora_id": "00000000-0000-4000-8000-000000000001",
                 "namespace": "other-ns",
                 "agent_server_ca": agent_config.agent_server_cert,
                 "agent_server_cert": agent_config.agent_server_ca}.get(key, "/tmp/elsewhere")
    status, body = _put(client, _replace_line(original, key, new_value))
    assert status == 400
    assert str(body["details"]).startswith(IMMUTABLE[key])
    assert Path(agent_config.config_file).read_text() == original


def test_binaries_cannot_be_added(client: FlaskClient, agent_config: AgentConfig) -> None:
    original = Path(agent_config.config_file).read_text()
    text = original.replace("[haproxy_amphora]\n", "[haproxy_amphora]\nhaproxy_cmd = /bin/sh\n")
    status, body = _put(client, text)
    assert status == 400 and str(body["details"]).startswith("[haproxy_amphora] haproxy_cmd")
    assert Path(agent_config.config_file).read_text() == original


# Values the parsers would otherwise accept: a free-text key and a key of
# Octavia's sections that the agent ignores.
CONTROL = {
    "an escape sequence": ("health_manager", "heartbeat_key", "k\x1b[2Jey"),
    "a NUL in an ignored Octavia key": ("controller_worker", "amp_active_retries", "3\x00"),
    "a tab": ("health_manager", "heartbeat_key", "key\twith a tab"),
    "a continuation line": ("health_manager", "heartbeat_key", "key\n    ExecStartPre=/bin/sh"),
    "a unicode line separator": ("health_manager", "heartbeat_key", "key\u2028x"),
}


def _add_line(text: str, section: str, key: str, value: str) -> str:
    lines = text.splitlines()
    lines.insert(lines.index(f"[{section}]") + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("case", sorted(CONTROL))
def test_control_characters_in_any_value_are_refused(client: FlaskClient,
                                                     agent_config: AgentConfig,
                                                     case: str) -> None:
    section, key, value = CONTROL[case]
    original = Path(agent_config.config_file).read_text()
    plain = _add_line(original, section, key, "plain")
    assert _put(client, plain)[0] == 202  # the key itself is accepted
    status, body = _put(client, _add_line(original, section, key, value))
    assert status == 400, body
    assert key in str(body["details"]) and "control characters" in str(body["details"])
    assert Path(agent_config.config_file).read_text() == plain
