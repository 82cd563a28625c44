"""Paths in uploaded configs: each must belong to the load balancer (confpaths)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amphora_agent.errors import InvalidRequest
from amphora_agent.haproxy import confpaths
from amphora_agent.haproxy.layout import LbLayout

GOLDEN = Path(__file__).parents[1] / "haproxy_templates" / "golden"
LB = "0b7e2d3c-1a2b-4c5d-8e9f-000000000001"
OTHER = "9c1d5e0f-0000-4000-8000-000000000002"


def _places(base: Path, lb_id: str = LB) -> confpaths.Places:
    return confpaths.places(LbLayout(base, lb_id), base / "certs" / lb_id)


def _config(base: Path, *global_lines: str, frontend: tuple[str, ...] = (),
            backend: tuple[str, ...] = ()) -> str:
    return "\n".join([
        "global",
        f"    stats socket {base}/{LB}.sock mode 600 level admin",
        f"    server-state-file {base}/{LB}/servers-state",
        *(f"    {line}" for line in global_lines),
        "defaults", "    timeout client 1s",
        "frontend fe", "    bind 127.0.0.1:8080", *(f"    {line}" for line in frontend),
        "    default_backend be",
        "backend be", "    server s1 192.0.2.10:80", *(f"    {line}" for line in backend),
        ""])


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("*.cfg")))
def test_configs_our_renderer_writes_are_accepted(name: str) -> None:
    confpaths.check((GOLDEN / name).read_text(), _places(Path("/var/lib/octavia")))


def test_golden_configs_exist() -> None:
    assert len(list(GOLDEN.glob("*.cfg"))) >= 5


def test_octavia_shaped_config_is_accepted(tmp_path: Path) -> None:
    certs = tmp_path / "certs" / LB
    certs.mkdir(parents=True)
    (certs / "cert.pem").write_text("x")
    (certs / "listener.pem").write_text(f"{certs}/cert.pem\n")
    text = _config(tmp_path, "log /run/rsyslog/octavia/log local0",
                   "log /dev/log local1 notice", "external-check",
                   frontend=(f"bind 127.0.0.1:8443 ssl crt-list {certs}/listener.pem "
                             f"ca-file {certs}/ca.pem verify required crl-file {certs}/crl.pem",),
                   backend=(f"server s2 192.0.2.11:443 ssl crt {certs}/client.pem "
                            f"ca-file {certs}/ca.pem",
                            "option external-check",
                            "external-check command /var/lib/octavia/ping-wrapper.sh"))
    assert confpaths.check(text, _places(tmp_path)) == [certs / "listener.pem"]


def _rejects(base: Path, text: str, *needles: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        confpaths.check(text, _places(base))
    for needle in needles:
        assert needle in err.value.details


OUTSIDE = {
    "stats socket elsewhere": (("stats socket /run/evil.sock mode 600",), (), (),
                               "stats socket", "/run/evil.sock"),
    "stats socket of another LB": ((f"stats socket {{base}}/{OTHER}.sock",), (), (),
                                   "stats socket", OTHER),
    "unix@ stats socket": (("stats socket unix@/etc/x.sock",), (), (), "/etc/x.sock"),
    "pidfile": (("pidfile /run/haproxy.pid",), (), (), "pidfile"),
    "state file traversal": (("server-state-file {base}/" + LB + "/../../etc/passwd",), (), (),
                             "server-state-file"),
    "state base": (("server-state-base /etc", "server-state-file passwd"), (), (),
                   "server-state-base"),
    "chroot": (("chroot /",), (), (), "chroot"),
    "backend state file": ((), (), ("load-server-state-from-file local",
                                    "server-state-file-name /etc/passwd"),
                           "server-state-file-name", "/etc/passwd"),
    "backend state file by name": (("server-state-base {base}/" + LB,), (),
                                   ("load-server-state-from-file local",
                                    "server-state-file-name use-backend-name"),
                                   "use-backend-name"),
    "crt-base": (("crt-base /etc/octavia/certs",), (), (), "crt-base"),
    "dh param": (("ssl-dh-param-file /etc/ssl/dh.pem",), (), (), "ssl-dh-param-file"),
    "log to a unix socket": (("log /run/systemd/notify local0",), (), (), "log"),
    "log unix@": (("log unix@/run/systemd/journal/socket local0",), (), (), "log"),
    "bind crt": ((), ("bind 127.0.0.1:8443 ssl crt /etc/octavia/certs/server.pem",), (),
                 "bind crt", "/etc/octavia/certs/server.pem"),
    "bind unix socket": ((), ("bind /run/lb.sock",), (), "bind", "/run/lb.sock"),
    "bind ca-file": ((), ("bind :8443 ssl crt {base}/certs/" + LB + "/a.pem "
                          "ca-file /etc/octavia/certs/client_ca.pem",), (), "ca-file"),
    "server crt": ((), (), ("server s2 192.0.2.11:443 ssl crt /etc/octavia/certs/server.pem",),
                   "server crt"),
    "server unix address": ((), (), ("server s2 /run/docker.sock",), "server"),
    "server crl": ((), (), ("server s2 192.0.2.1:443 ssl crl-file /etc/crl.pem",), "crl-file"),
    "relative crt": ((), ("bind :8443 ssl crt server.pem",), (), "must be absolute"),
    "errorfile": ((), ("errorfile 503 /etc/shadow",), (), "errorfile", "/etc/shadow"),
    "return file": ((), ("http-request return status 200 file /etc/shadow",), (),
                    "http-request file"),
    "return lf-file": ((), ("http-request return status 200 lf-file /etc/passwd",), (),
                       "lf-file"),
    "acl pattern file": ((), ("acl bad src -f /etc/hosts", "http-request deny if bad"), (),
                         "acl -f", "/etc/hosts"),
    "map converter": ((), ("http-request set-header X %[src,map_ip(/etc/shadow)]",), (),
                      "map_ip()"),
    "map_str_int converter": ((), ("http-request set-var(txn.x) src,map_str_int(/etc/x,0)",),
                              (), "/etc/x"),
    "set-map action": ((), ("http-request set-map(/etc/hosts) %[src] x",), (), "set-map()"),
    "other LB's dir": (("pidfile {base}/" + OTHER + "/haproxy.pid",), (), (), OTHER),
    "agent's own config": (("pidfile {base}/" + LB + "/haproxy.cfg",), (), (), "haproxy.cfg"),
    "agent's master socket": (("stats socket {base}/" + LB + "/master.sock",), (), (),
                              "master.sock"),
    "environment in a path": (("pidfile \"${{HOME}}/x.pid\"",), (), (), "environment"),
    "control character": (("pidfile \"{base}/" + LB + "/a\\x0ab\"",), (), (), "control"),
    "external check elsewhere": ((), (), ("option external-check",
                                          "external-check command /bin/sh"),
                                 "external-check command"),
}


@pytest.mark.parametrize("case", sorted(OUTSIDE))
def test_paths_outside_the_lb_are_refused_naming_keyword_and_path(tmp_path: Path,
                                                                  case: str) -> None:
    glob, fe, be, *needles = OUTSIDE[case]
    fmt = {"base": tmp_path}
    text = _config(tmp_path, *(g.format(**fmt) for g in glob),
                   frontend=tuple(f.format(**fmt) for f in fe),
                   backend=tuple(b.format(**fmt) for b in be))
    _rejects(tmp_path, text, *needles)


REFUSED = {
    "lua": ("global", "    lua-load /tmp/x.lua"),
    "lua in the LB dir": ("global", f"    lua-load-per-thread /var/lib/octavia/{LB}/x.lua"),
    "program section": ("program evil", "    command /bin/sh -c id"),
    "indented program section": ("  program evil", "    command /bin/sh -c id"),
    "setenv": ("global", "    setenv LD_PRELOAD /tmp/x.so"),
    "ssl-engine": ("global", "    ssl-engine rdrand"),
    "ring": ("ring r", "    server s /run/x.sock"),
    "external-check path": ("global", "    external-check path /tmp"),
    "keyword from the environment": ("global", '    "${KW}" /tmp/x'),
    "option from the environment": ("frontend f", '    bind :443 ssl "${OPT}" /etc/x.pem'),
    "$NAME form": ("frontend f", '    bind :443 ssl "$OPT" /etc/x.pem'),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_code_loading_keywords_are_refused(case: str) -> None:
    with pytest.raises(InvalidRequest):
        confpaths.check("\n".join(REFUSED[case]) + "\n", _places(Path("/var/lib/octavia")))


def test_escaped_dollars_are_literal_and_accepted(tmp_path: Path) -> None:
    escaped = _config(tmp_path, frontend=('acl api path -m reg "^/api$"',
                                          'acl host hdr(x) -m str "\\$HOST" 5$',
                                          "http-request deny if api host"))
    confpaths.check(escaped, _places(tmp_path))
    with pytest.raises(InvalidRequest) as err:
        confpaths.check(escaped.replace("\\$HOST", "$HOST"), _places(tmp_path))
    assert "environment" in err.value.details


def test_symlink_out_of_the_lb_directory_is_refused(tmp_path: Path) -> None:
    lb_dir = tmp_path / LB
    lb_dir.mkdir()
    os.symlink("/etc", lb_dir / "escape")
    _rejects(tmp_path, _config(tmp_path, f"pidfile {lb_dir}/escape/evil.pid"), "pidfile")


def test_crt_list_entries_must_belong_to_the_lb(tmp_path: Path) -> None:
    certs = tmp_path / "certs" / LB
    certs.mkdir(parents=True)
    (certs / "list.pem").write_text(f"{certs}/ok.pem\n/etc/octavia/certs/server.pem [alpn h2]\n")
    text = _config(tmp_path, frontend=(f"bind :8443 ssl crt-list {certs}/list.pem",))
    _rejects(tmp_path, text, "crt-list entry", "/etc/octavia/certs/server.pem")


def test_owns_is_about_this_lb_only(tmp_path: Path) -> None:
    places = _places(tmp_path)
    assert places.owns(tmp_path / LB / "servers-state")
    assert places.owns(tmp_path / f"{LB}.sock")
    assert places.owns(tmp_path / "certs" / LB / "a.pem")
    assert not places.owns(tmp_path / OTHER / "servers-state")
    assert not places.owns(tmp_path / f"{OTHER}.sock")
    assert not places.owns(tmp_path / "heartbeat.state")
    assert not places.owns(tmp_path / LB / "haproxy.cfg")

