"""Capability table: version parsing, errors naming the version, renderer fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hpt_cases import AMP_A, case
from hpt_render import assert_valid, render_checked

from haproxy_templates import (
    FEATURES,
    CapabilityError,
    Target,
    Version,
    Versions,
    capability_map,
    render,
    supports,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("2.6.12-1+deb12u4", Version(2, 6, 12)),
    ("1:2.6.12-1", Version(2, 6, 12)),
    ("HAProxy version 2.8.5-1ubuntu3 2024/04/01 - https://haproxy.org/", Version(2, 8, 5)),
    ("2.9-dev7", Version(2, 9, 0)),
    ("OpenSSL 3.0.22 25 Aug 2026 (Library: OpenSSL 3.0.22 25 Aug 2026)", Version(3, 0, 22)),
    ("1.1.1w", Version(1, 1, 1)),
])
def test_versions_parse(text: str, expected: Version) -> None:
    assert Version.parse(text) == expected


def test_table_versions() -> None:
    since = {name: f.haproxy.short for name, f in FEATURES.items() if f.haproxy}
    assert since["http2_frontend"] == "1.8"
    assert since["http2_backend"] == "1.9"
    assert since["tls13_ciphersuites"] == "1.9"
    assert since["prometheus_exporter"] == "2.0"
    assert since["http_check_send"] == "2.2"
    assert since["dynamic_servers"] == "2.4"
    assert since["idle_close_on_response"] == "2.6"
    assert since["shm_stats_file"] == "3.3"


def test_capability_map_from_image_metadata() -> None:
    caps = capability_map("2.6.12-1+deb12u4", "3.0.11")
    assert caps["idle_close_on_response"] and caps["http_check_send"]
    assert not caps["shm_stats_file"]
    old = capability_map("2.0.33-1", "1.1.0l")
    assert old["prometheus_exporter"] and not old["http_check_send"]
    assert not old["tls13"]


def test_missing_build_service_is_reported() -> None:
    v = Versions.of("2.6.12", services=frozenset())
    assert not supports(v, "prometheus_exporter")
    assert supports(Versions.of("2.6.12"), "prometheus_exporter")


def test_prometheus_listener_needs_2_0() -> None:
    with pytest.raises(CapabilityError) as info:
        render(case("prometheus"), amphora_id=AMP_A, target=Target("1.9.16"))
    assert info.value.field == "listeners[0].protocol"
    assert "needs HAProxy >= 2.0" in info.value.message
    assert "1.9.16" in info.value.message


def test_explicit_h2_towards_members_needs_1_9() -> None:
    with pytest.raises(CapabilityError) as info:
        render(case("reencrypt"), amphora_id=AMP_A, target=Target("1.8.30"))
    assert info.value.field == "pools[0].alpn_protocols"
    assert "HAProxy >= 1.9" in str(info.value)


def test_explicit_tls13_needs_openssl_111() -> None:
    with pytest.raises(CapabilityError) as info:
        render(case("reencrypt"), amphora_id=AMP_A,
               target=Target("2.6.12", openssl_version="1.1.0l"))
    assert info.value.field == "pools[0].tls_versions"
    assert "OpenSSL >= 1.1.1" in info.value.message


def test_too_old_haproxy_is_refused() -> None:
    with pytest.raises(CapabilityError) as info:
        render(case("http"), amphora_id=AMP_A, target=Target("1.7.14"))
    assert "HAProxy >= 1.8" in info.value.message


def test_health_check_host_needs_http_check_send() -> None:
    with pytest.raises(CapabilityError) as info:
        render(case("health_monitors"), amphora_id=AMP_A, target=Target("2.1.12"))
    assert info.value.field == "pools[0].healthmonitor.domain_name"
    assert "HAProxy >= 2.2" in info.value.message


def test_defaults_degrade_quietly_on_older_targets(tmp_path: Path, pki, haproxy_bin) -> None:
    """Operator defaults (not user requests) are trimmed to what the target has."""
    old = Target("2.1.12", openssl_version="1.1.0l")
    text = render(case("http"), amphora_id=AMP_A, target=old)
    assert "option httpchk HEAD \"/healthz\" HTTP/1.0" in text
    assert "http-check send" not in text
    assert "idle-close-on-response" not in text
    assert "ciphersuites" not in text and "TLSv1.3" not in text
    # The older syntax is still accepted by the HAProxy installed here.
    text, checked = render_checked(case("http"), tmp_path, pki, target=old)
    assert_valid(checked, text)


def test_detect_reads_local_machine(haproxy_bin) -> None:
    import os
    import re
    import resource
    import subprocess

    target = Target.detect()
    vv = subprocess.run([haproxy_bin, "-vv"], capture_output=True, text=True,
                        check=True).stdout
    major, minor, patch = re.search(r"version (\d+)\.(\d+)\.(\d+)", vv).groups()  # type: ignore[union-attr]
    assert target.haproxy == Version(int(major), int(minor), int(patch))
    services = re.search(r"^Available services : (.*)$", vv, re.MULTILINE)
    assert services is not None, "this haproxy -vv names no services line"
    assert target.services == frozenset(services.group(1).split())
    assert target.cpu_count == os.cpu_count()
    with open("/proc/meminfo") as meminfo:
        assert target.memory_kb == int(meminfo.readline().split()[1])  # MemTotal comes first
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert target.fd_limit == (soft if soft != resource.RLIM_INFINITY else 1024 * 1024)
