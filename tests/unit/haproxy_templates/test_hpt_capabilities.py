"""Capability table: version parsing, errors naming the version, renderer fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hpt_cases import AMP_A, case
from hpt_render import assert_valid, render_checked

from haproxy_templates import (
    FEATURES,
    CapabilityError,
    RenderOptions,
    Target,
    ValidationError,
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
    assert since["http2_frontend"] == "3.0"
    assert since["http2_backend"] == "3.0"
    assert since["ocsp_update"] == "3.0"
    assert since["quic_listener"] == "2.8"
    assert (since["quic_native_tls"], str(FEATURES["quic_native_tls"].openssl)) == (
        "3.2", "3.5.0")
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


def lines(text: str, prefix: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith(prefix)]


def test_h2_only_pool_needs_3_0_and_h2_among_fallbacks_is_dropped() -> None:
    doc = case("reencrypt")
    text = render(doc, amphora_id=AMP_A, target=Target("2.6.12"))
    assert 'alpn "h2' not in text and "glitches-threshold" not in text
    doc["pools"][0]["alpn_protocols"] = ["h2"]
    with pytest.raises(CapabilityError) as info:
        render(doc, amphora_id=AMP_A, target=Target("2.6.12-1+deb12u4"))
    assert info.value.field == "pools[0].alpn_protocols"
    assert "HTTP/2 towards members" in info.value.message
    assert "HAProxy >= 3.0" in info.value.message and "2.6.12" in info.value.message


def test_http2_listener_needs_3_0_and_gets_glitch_cap() -> None:
    doc = case("tls_termination")
    doc["listeners"][0]["alpn_protocols"] = ["h2"]
    with pytest.raises(CapabilityError) as info:
        render(doc, amphora_id=AMP_A, target=Target("2.6.12-1+deb12u4"))
    assert info.value.field == "listeners[0].alpn_protocols"
    assert "HTTP/2 towards clients" in info.value.message and "3.0" in info.value.message
    text = render(doc, amphora_id=AMP_A, target=Target("3.0.11-1+deb13u4", "3.5.9"))
    assert 'alpn "h2"' in text and "tune.h2.fe.glitches-threshold 1000" in text
    assert "tune.h2.be.glitches-threshold" not in text


def test_h3_needs_a_quic_build() -> None:
    doc = case("tls_termination")
    doc["listeners"][0]["alpn_protocols"] = ["h3", "h2", "http/1.1"]
    with pytest.raises(CapabilityError) as info:
        render(doc, amphora_id=AMP_A, target=Target("3.0.11", "3.5.9", build=frozenset()))
    assert "QUIC" in info.value.message and info.value.field == "listeners[0].alpn_protocols"
    compat = Target("3.0.11", "3.5.9", build=frozenset({"QUIC", "QUIC_OPENSSL_COMPAT"}))
    text = render(doc, amphora_id=AMP_A, target=compat)
    assert "limited-quic" in lines(text, "limited-quic")[0]
    assert lines(text, "bind quic4@203.0.113.10:443 ssl ")[0].endswith(" alpn h3")
    native = render(doc, amphora_id=AMP_A,
                    target=Target("3.2.26", "3.6.5", build=frozenset({"QUIC"})))
    assert "limited-quic" not in native and "bind quic4@" in native
    pool_h3 = case("reencrypt")
    pool_h3["pools"][0]["alpn_protocols"] = ["h3"]
    with pytest.raises(ValidationError, match="for listeners") as refused:
        render(pool_h3, amphora_id=AMP_A, target=compat)
    assert refused.value.field == "pools[0].alpn_protocols"


def test_ocsp_update_only_where_the_image_has_it() -> None:
    options = RenderOptions(ocsp_update=True)
    old = render(case("tls_termination"), amphora_id=AMP_A, target=Target("2.6.12"),
                 options=options)
    new = render(case("tls_termination"), amphora_id=AMP_A, target=Target("3.0.11"),
                 options=options)
    assert "ocsp-update" not in old and lines(new, "ocsp-update.mode ") == [
        "ocsp-update.mode on"]


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
