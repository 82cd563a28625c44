from __future__ import annotations

import re
from pathlib import Path

import pytest

from amphora_agent import config as agent_config
from amphora_agent.config import ConfigError, HeartbeatTarget

OCTAVIA_RENDERED = """\
[DEFAULT]
debug = False
use_syslog = True
syslog_log_facility = LOG_LOCAL1

[haproxy_amphora]
base_cert_dir = /var/lib/octavia/certs
base_path = /var/lib/octavia
bind_host = ::
bind_port = 9443
haproxy_cmd = /usr/sbin/haproxy
respawn_count = 2
respawn_interval = 2
use_upstart = True
user_log_facility = 0
administrative_log_facility = 1

[health_manager]
controller_ip_port_list = 192.0.2.10:5555, [2001:db8::10]:5555
heartbeat_interval = 10
heartbeat_key = insecure

[amphora_agent]
agent_server_ca = {ca}
agent_server_cert = {cert}
agent_server_network_dir = /etc/octavia/interfaces/
agent_request_read_timeout = 180
amphora_id = 0B1E8D1C-0D2B-4F62-9C2B-29E0F4E1B7A3
agent_tls_protocol = TLSv1.2

[controller_worker]
loadbalancer_topology = ACTIVE_STANDBY
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    ca = tmp_path / "ca.pem"
    cert = tmp_path / "server.pem"
    ca.write_text("x")
    cert.write_text("x")
    return {"ca": str(ca), "cert": str(cert)}


def test_octavia_rendered_config_loads_unchanged(files: dict[str, str]) -> None:
    config = agent_config.parse(OCTAVIA_RENDERED.format(**files))
    assert config.controller_ip_port_list == (
        HeartbeatTarget("192.0.2.10", 5555), HeartbeatTarget("2001:db8::10", 5555))
    assert config.heartbeat_key == "insecure"
    assert config.loadbalancer_topology == "ACTIVE_STANDBY"
    assert config.amphora_id == "0b1e8d1c-0d2b-4f62-9c2b-29e0f4e1b7a3"
    assert config.agent_server_network_dir == "/etc/octavia/interfaces"
    assert config.use_syslog is True
    # our section's safe defaults
    assert config.namespace == "amphora-haproxy"
    assert config.service_manager == "auto"
    assert config.allowed_client_identities == ()


def test_amphora_section(files: dict[str, str]) -> None:
    text = OCTAVIA_RENDERED.format(**files) + (
        "\n[amphora]\nnamespace = amp-1-haproxy\nservice_manager = Direct\n"
        "max_body_size = 2048\nallowed_client_identities = controller, ops\n")
    config = agent_config.parse(text)
    assert config.namespace == "amp-1-haproxy"
    assert config.service_manager == "direct"
    assert config.max_body_size == 2048
    assert config.allowed_client_identities == ("controller", "ops")


@pytest.mark.parametrize(("section", "line", "message"), [
    ("haproxy_amphora", "bind_port = 70000", "[haproxy_amphora] bind_port: 70000 is outside"),
    ("haproxy_amphora", "bind_host = example.org", "[haproxy_amphora] bind_host"),
    ("haproxy_amphora", "base_path = relative/dir",
     "[haproxy_amphora] base_path: expected an absolute"),
    ("health_manager", "controller_ip_port_list = 192.0.2.1", "controller_ip_port_list"),
    ("health_manager", "heartbeat_interval = soon", "heartbeat_interval: expected an integer"),
    ("amphora_agent", "amphora_id = not-a-uuid", "[amphora_agent] amphora_id"),
    ("amphora_agent", "agent_server_ca = /nonexistent/ca.pem",
     "[amphora_agent] agent_server_ca: file /nonexistent/ca.pem does not exist"),
    ("amphora_agent", "agent_tls_protocol = SSLv3", "agent_tls_protocol"),
    ("controller_worker", "loadbalancer_topology = TRIPLE", "loadbalancer_topology"),
    ("amphora", "service_manager = upstart", "[amphora] service_manager"),
    ("amphora", "namespace = ../etc", "[amphora] namespace"),
    ("amphora", "mystery = 1", "[amphora] mystery: unknown key"),
    ("DEFAULT", "debug = maybe", "debug: expected a boolean"),
])
def test_bad_values_name_the_key(files: dict[str, str], section: str, line: str,
                                 message: str) -> None:
    base = OCTAVIA_RENDERED.format(**files)
    key = line.split("=")[0].strip()
    if section == "amphora":
        text = base + f"\n[{section}]\n{line}\n"
    elif re.search(rf"^{key} = ", base, re.MULTILINE):
        text = re.sub(rf"^{key} = .*$", line, base, count=1, flags=re.MULTILINE)
    else:
        text = base.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    with pytest.raises(ConfigError) as err:
        agent_config.parse(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_section_and_broken_ini() -> None:
    with pytest.raises(ConfigError, match=r"\[surprise\]: unknown section"):
        agent_config.parse("[surprise]\na = 1\n")
    with pytest.raises(ConfigError, match="not a valid INI file"):
        agent_config.parse("no section header\n")


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        agent_config.load(tmp_path / "absent.conf")
    assert "cannot read config" in str(err.value)


def test_cli_check_reports_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from amphora_agent.cli import main

    conf = tmp_path / "agent.conf"
    conf.write_text("[haproxy_amphora]\nbind_port = -1\n")
    assert main(["--config-file", str(conf), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "amphora-agent: config error: [haproxy_amphora] bind_port: -1 is outside 1..65535"
