"""Renderer decisions: sizing, names, persistence, backend verification, peers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hpt_cases import AMP_A, AMP_B, GOLDEN_TARGET, LB_ID, case, uid
from hpt_pki import PKI
from hpt_render import assert_valid, base_dir_of, render_checked

from haproxy_templates import RenderOptions, Target, ValidationError, peer_name, render


def lines(text: str, prefix: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(prefix)]


def value(text: str, keyword: str) -> str:
    """The argument of the first ``keyword`` line (the global section comes first)."""
    return lines(text, keyword + " ")[0][len(keyword) + 1:]


# Octavia's peer names: octavia.common.utils.base64_sha1_string(amphora_id) with the
# padding removed (its agent's ``haproxy -L`` name uses ``.rstrip("=")``, its template's
# ``peer`` line ``replace('=', '')``). The first three
# pairs are the known answers of Octavia's own unit test for base64_sha1_string
# (octavia/tests/unit/common/test_utils.py), padding stripped as its agent does; all
# were recomputed with the octavia package that `make .venv-octavia` installs:
#   .venv-octavia/bin/python -c 'from octavia.common.utils import base64_sha1_string as b;
#       print(b("<id>").rstrip("="))'
OCTAVIA_PEER_NAMES = {
    # no alternative characters
    "77e7d60d-e137-4246-8a84-a25db33571cd": "iVZVQ5AKmk2Ae0uGLP0Ue4OseRM",
    # '-' (base64 '/') inside the name stays
    "9c6e5f27-a0da-4ceb-afe5-5a81230be42e": "NjrNgt3Egl-H5ScbYM5ChtUH3M8",
    # a leading '-' becomes 'x'; '_' is base64's '+'
    "4db4a3cf-9fef-4057-b1fd-b2afbf7a8a0f": "xxqntK8jJ_gE3QEmh-D1-XgCW_E",
    AMP_A: "vy6fPjDoC0FXPYFxJ_GeYNxSRBg",
    AMP_B: "at9OpjfFZRMR3MXZjocNx4II_54",
}


@pytest.mark.parametrize(("amphora_id", "expected"), sorted(OCTAVIA_PEER_NAMES.items()))
def test_peer_name_is_octavias(amphora_id: str, expected: str) -> None:
    assert peer_name(amphora_id) == expected


def test_rendered_peers_use_octavias_names() -> None:
    text = render(case("active_standby"), amphora_id=AMP_B, target=GOLDEN_TARGET)
    assert lines(text, "peer ") == [f'peer "{OCTAVIA_PEER_NAMES[AMP_A]}" 198.51.100.5:1025',
                                    f'peer "{OCTAVIA_PEER_NAMES[AMP_B]}" 198.51.100.6:1025']


def test_names_follow_octavia() -> None:
    text = render(case("l7_policies"), amphora_id=AMP_A, target=GOLDEN_TARGET)
    assert lines(text, "frontend ") == [f"frontend {uid(1)}"]
    assert f"backend {uid(11)}:{uid(1)}" in lines(text, "backend ")
    assert f"backend {uid(12)}:{uid(1)}" in lines(text, "backend ")
    assert any(ln.startswith(f"server {uid(1101)} ") for ln in lines(text, "server "))


def test_global_sizing_from_target() -> None:
    small = Target("2.6.12", cpu_count=4, memory_kb=1024 * 1024, fd_limit=1_000_000)
    text = render(case("http"), amphora_id=AMP_A, target=small)
    # Memory allows 1 GiB * 0.5 / 2 workers / 34 kB = 7710; the listener asks for 5000.
    assert value(text, "maxconn") == "5000"
    assert value(text, "nbthread") == "4"
    assert value(text, "cpu-map") == "auto:1/1-4 0-3"
    assert value(text, "tune.ssl.cachesize") == str(1024 * 1024 * 1024 // 50 // 2 // 248)
    fd_bound = Target("2.6.12", memory_kb=64 * 1024 * 1024, fd_limit=4096)
    text = render(case("http"), amphora_id=AMP_A, target=fd_bound)
    assert int(value(text, "maxconn")) <= (4096 - 100) // 2
    mem_bound = Target("2.6.12", memory_kb=256 * 1024)
    doc = case("http")
    doc["listeners"][0]["connection_limit"] = -1
    text = render(doc, amphora_id=AMP_A, target=mem_bound)
    assert value(text, "maxconn") == str(256 * 1024 // 2 // 2 // 34)
    tuned = Target("2.6.12", cpu_count=8, reserve_cpu0=True)
    text = render(case("http"), amphora_id=AMP_A, target=tuned)
    assert value(text, "nbthread") == "7" and value(text, "cpu-map") == "auto:1/1-7 1-7"


# Resident bytes of one tune.ssl.cachesize entry on HAProxy 2.6 (measured:
# 1,000,000 entries take 241,800 kB more than 1,000) and of one connection.
CACHE_ENTRY_BYTES = 248
TLS_CONNECTION_KB = 64


@pytest.mark.parametrize("memory_mib", [48, 256])
def test_tls_cache_of_two_generations_fits_a_small_amphora(memory_mib: int) -> None:
    """During a reload the old worker keeps its whole session cache and its
    connections while the new one allocates its own: both must fit."""
    memory_kb = memory_mib * 1024
    small = Target("2.6.12", memory_kb=memory_kb, fd_limit=1_000_000)
    doc = case("tls_termination")
    doc["listeners"][0]["connection_limit"] = -1  # as much as memory allows
    text = render(doc, amphora_id=AMP_A, target=small)
    cachesize, maxconn = int(value(text, "tune.ssl.cachesize")), int(value(text, "maxconn"))
    two_caches_kb = 2 * cachesize * CACHE_ENTRY_BYTES / 1024
    assert 0 < two_caches_kb <= memory_kb * 0.02
    assert two_caches_kb + 2 * maxconn * TLS_CONNECTION_KB <= memory_kb * 0.52
    default = render(doc, amphora_id=AMP_A, target=Target("2.6.12"))  # 1 GiB
    assert cachesize < int(value(default, "tune.ssl.cachesize"))


def test_http_backends_reuse_idle_member_connections() -> None:
    text = render(case("http"), amphora_id=AMP_A, target=GOLDEN_TARGET)
    assert lines(text, "http-reuse ") == ["http-reuse always"]
    assert not lines(render(case("tcp"), amphora_id=AMP_A, target=GOLDEN_TARGET),
                     "http-reuse ")
    safe = render(case("http"), amphora_id=AMP_A, target=GOLDEN_TARGET,
                  options=RenderOptions(http_reuse="safe"))
    assert lines(safe, "http-reuse ") == ["http-reuse safe"]
    with pytest.raises(ValidationError) as info:
        render(case("http"), amphora_id=AMP_A, target=GOLDEN_TARGET,
               options=RenderOptions(http_reuse="always\n    http-reuse never"))
    assert info.value.field == "options.http_reuse"


@pytest.mark.parametrize("name", ["http", "tcp"])
def test_connection_logging_off_keeps_haproxys_own_notices(name: str, tmp_path: Path,
                                                           pki: PKI) -> None:
    text, checked = render_checked(case(name), tmp_path, pki,
                                   options=RenderOptions(connection_logging=False))
    assert_valid(checked, text)
    assert lines(text, "no log") == ["no log"]
    assert not lines(text, "log global") and not lines(text, "option httplog")
    assert not lines(text, "option tcplog")
    assert lines(text, "log ")[1].endswith('"local1" notice')
    logged = render(case(name), amphora_id=AMP_A, target=GOLDEN_TARGET)
    assert lines(logged, "log global") and not lines(logged, "no log")


def test_global_management_lines() -> None:
    text = render(case("http"), amphora_id=AMP_A, target=GOLDEN_TARGET,
                  base_path="/srv/amp")
    assert f'stats socket "/srv/amp/{LB_ID}.sock" mode 600 level admin expose-fd listeners' in (
        text)
    assert f'server-state-file "/srv/amp/{LB_ID}/servers-state"' in text
    assert "load-server-state-from-file global" in text
    assert "master-worker" in text and lines(text, "hard-stop-after")
    for timeout in ("connect", "client", "server", "http-request", "http-keep-alive", "queue",
                    "tunnel", "check"):
        assert lines(text, f"timeout {timeout} "), timeout


def test_long_base_path_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        render(case("http"), amphora_id=AMP_A, target=GOLDEN_TARGET, base_path="/x" * 40)
    assert info.value.field == "options.base_path"


def test_cookie_values_do_not_leak_member_ids() -> None:
    text = render(case("persistence"), amphora_id=AMP_A, target=GOLDEN_TARGET)
    cookie_servers = [ln for ln in lines(text, "server ") if " cookie " in ln]
    assert len(cookie_servers) == 2
    for line in cookie_servers:
        member_id = line.split()[1]
        cookie = line.split(" cookie ")[1].split()[0]
        assert re.fullmatch(r"[0-9a-f]{16}", cookie)
        assert member_id.replace("-", "")[:8] not in cookie and member_id not in cookie


def test_stick_tables_expire_and_sync_with_peers() -> None:
    text = render(case("persistence"), amphora_id=AMP_A, target=GOLDEN_TARGET)
    tables = lines(text, "stick-table ")
    assert len(tables) == 2 and all(" expire " in t for t in tables)
    assert 'stick store-response "res.cook(JSESSIONID)"' in text
    assert "expire 600s" in text
    text = render(case("active_standby"), amphora_id=AMP_B, target=GOLDEN_TARGET)
    (table,) = lines(text, "stick-table ")
    peers_name = LB_ID.replace("-", "") + "_peers"
    assert table.endswith(f"peers {peers_name}")
    assert f'peer "{peer_name(AMP_A)}" 198.51.100.5:1025' in text
    assert f'peer "{peer_name(AMP_B)}" 198.51.100.6:1025' in text
    with pytest.raises(ValidationError) as info:
        render(case("active_standby"), amphora_id=uid(12345), target=GOLDEN_TARGET)
    assert info.value.field == "amphora_id"


def test_ipv6_source_persistence_uses_ipv6_table() -> None:
    text = render(case("ipv6"), amphora_id=AMP_A, target=GOLDEN_TARGET)
    assert lines(text, "stick-table ")[0].startswith("stick-table type ipv6 ")
    assert "bind 2001:db8::1:443" in text


def test_ca_on_pool_means_verify_required_on_every_server() -> None:
    doc = case("reencrypt")
    text = render(doc, amphora_id=AMP_A, target=GOLDEN_TARGET)
    ca_servers = [ln for ln in lines(text, "server ") if "pool_ca.pem" in ln]
    assert len(ca_servers) == 2
    assert all(" verify required ca-file " in ln and "verify none" not in ln
               for ln in ca_servers)
    # Even with a TLS-HELLO/HTTPS monitor that would otherwise add "check-ssl verify none".
    doc["pools"][0]["healthmonitor"] = {"id": uid(77), "type": "TLS-HELLO", "delay": 5,
                                        "timeout": 3, "max_retries": 2}
    text = render(doc, amphora_id=AMP_A, target=GOLDEN_TARGET)
    ca_servers = [ln for ln in lines(text, "server ") if "pool_ca.pem" in ln]
    assert len(ca_servers) == 2
    assert all(" verify required ca-file " in ln and "verify none" not in ln
               for ln in ca_servers)


def test_two_vips_bind_each() -> None:
    text = render(case("two_vips"), amphora_id=AMP_A, target=GOLDEN_TARGET)
    assert lines(text, "bind ") == ["bind 203.0.113.10:80", "bind 2001:db8::10:80"]


def test_lvs_listeners_are_not_in_haproxy_config() -> None:
    text = render(case("health_monitors"), amphora_id=AMP_A, target=GOLDEN_TARGET)
    assert uid(9) not in text and uid(10) not in text and ":53" not in text


def test_prometheus_service_and_internal_exporter() -> None:
    text = render(case("prometheus"), amphora_id=AMP_A, target=GOLDEN_TARGET,
                  options=RenderOptions(prometheus_bind="127.0.0.1:9101"))
    assert text.count("http-request use-service prometheus-exporter if { path /metrics }") == 2
    assert "disabled" in lines(text, "disabled")


def test_internal_exporter_on_a_unix_socket_in_the_lb_directory(tmp_path: Path,
                                                                pki: PKI) -> None:
    """Where the agent's /1.0/ext/metrics reads HAProxy's exporter (docs/agent.md)."""
    text, checked = render_checked(case("prometheus"), tmp_path, pki,
                                   options=RenderOptions(prometheus_socket=True))
    assert_valid(checked, text)
    base = base_dir_of(text)
    assert f'bind "unix@{base}/{LB_ID}/prometheus.sock" mode 600' in lines(text, "bind ")
    assert text.count("http-request use-service prometheus-exporter if { path /metrics }") == 2
    plain = render(case("prometheus"), amphora_id=AMP_A, target=GOLDEN_TARGET)
    assert "prometheus.sock" not in plain
