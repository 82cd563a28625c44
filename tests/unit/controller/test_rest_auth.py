"""Auth that is safe by default: noauth only on loopback (the daemon exits 2
otherwise), static bearer tokens from a 0600 file only, 401 without a valid one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller_stub.controller import config as config_mod
from controller_stub.controller.rest import auth
from tests.unit.controller.rest_helpers import VIP_NETWORK, Api

TOKEN_A = "a" * 24 + "-token"
TOKEN_ADMIN = "admin-token-0123456789"


def _config(tmp_path: Path, api: str) -> Path:
    path = tmp_path / "controller.conf"
    path.write_text(f"[database]\nurl = sqlite:///{tmp_path}/state.db\n"
                    f"[compute]\nworkdir = {tmp_path}/fabric\n[api]\n{api}", encoding="utf-8")
    return path


@pytest.mark.parametrize("host", ["192.0.2.10", "0.0.0.0", "::"])
def test_noauth_on_a_non_loopback_address_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValueError, match="noauth serves loopback addresses only"):
        config_mod.load(_config(tmp_path, f"bind_host = {host}\n"))
    assert config_mod.load(_config(tmp_path, "bind_host = ::1\n")).api.bind_host == "::1"


def test_the_daemon_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    config = _config(tmp_path, "bind_host = 198.51.100.7\n")
    done = subprocess.run([sys.executable, "-m", "controller_stub.controller.daemon",
                           "--config-file", str(config)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "auth_strategy noauth serves loopback addresses only" in done.stderr


def _tokens(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# token project [admin]\n{TOKEN_A} p1\n{TOKEN_ADMIN} ops admin\n",
                    encoding="utf-8")
    path.chmod(mode)
    return path


def test_static_tokens_file_must_be_0600(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode 0600"):
        auth.load_tokens(_tokens(tmp_path, 0o644))
    tokens = auth.load_tokens(_tokens(tmp_path, 0o600))
    assert {c.project_id for c in tokens.values()} == {"p1", "ops"}
    assert TOKEN_A not in str(tokens)  # only digests are kept


def test_static_tokens(tmp_path: Path) -> None:
    tokens = auth.load_tokens(_tokens(tmp_path, 0o600))
    client = Api(tmp_path, lambda app: auth.static(app, tokens)).client
    url = "/v2/lbaas/loadbalancers"
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                    {"X-Project-Id": "p1"}):
        r = client.get(url, headers=headers)
        assert r.status_code == 401
        assert r.json["faultcode"] == "Client"
    mine = {"Authorization": f"Bearer {TOKEN_A}"}
    r = client.post(url, headers=mine, json={"loadbalancer": {"vip_network_id": VIP_NETWORK}})
    assert r.status_code == 201 and r.json["loadbalancer"]["project_id"] == "p1"
    # X-Auth-Token (openstacksdk's token auth) works too; the admin sees every project
    admin = client.get(url, headers={"X-Auth-Token": TOKEN_ADMIN}).json["loadbalancers"]
    assert [lb["project_id"] for lb in admin] == ["p1"]
    # a token's project cannot be overridden by a header
    r = client.get(url, headers={**mine, "X-Project-Id": "ops"})
    assert [lb["project_id"] for lb in r.json["loadbalancers"]] == ["p1"]


def test_token_file_lines_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short p1\n")
    os.close(fd)
    with pytest.raises(ValueError, match="line 1"):
        auth.load_tokens(path)


def test_api_defaults_and_required_settings(tmp_path: Path) -> None:
    api = config_mod.load(_config(tmp_path, "")).api
    assert (api.bind_host, api.bind_port, api.auth_strategy) == ("127.0.0.1", 9876, "noauth")
    with pytest.raises(ValueError, match="static_tokens_file: needed"):
        config_mod.load(_config(tmp_path, "auth_strategy = static\n"))
    with pytest.raises(ValueError, match=r"\[keystone_authtoken\]: needed"):
        config_mod.load(_config(tmp_path, "auth_strategy = keystone\nbind_host = 192.0.2.5\n"))
    with pytest.raises(ValueError, match="bind_host: an IP address"):
        config_mod.load(_config(tmp_path, "bind_host = localhost\n"))
    tokens = _tokens(tmp_path, 0o600)
    static = config_mod.load(_config(tmp_path, f"auth_strategy = static\nbind_host = "
                                               f"192.0.2.5\nstatic_tokens_file = {tokens}\n"))
    assert static.api.bind_host == "192.0.2.5"
