"""TLS policy: deny-list with aliases, contiguous versions, ciphers vs suites."""

from __future__ import annotations

import pytest
from hpt_cases import AMP_A, GOLDEN_TARGET, case

from haproxy_templates import RenderOptions, TLSPolicy, ValidationError, render
from haproxy_templates.tls import (
    check_alpn,
    check_ciphers,
    check_ciphersuites,
    check_versions,
)

POLICY = TLSPolicy()


def rejects(func, *args) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        func(*args)
    return info.value


def test_alias_expansion_hits_deny_list() -> None:
    # HIGH expands to ADH-* suites, which the aNULL entry of the deny-list names.
    err = rejects(check_ciphers, "HIGH", POLICY, "f")
    assert "aNULL" in err.message and "ADH-" in err.message
    # ALL without !PSK pulls in PSK suites.
    assert "PSK" in rejects(check_ciphers, "ALL:!aNULL:!eNULL", POLICY, "f").message
    # A cipher name that is only an alias member: AES128-SHA is static RSA (kRSA).
    assert "kRSA" in rejects(check_ciphers, "AES128-SHA", POLICY, "f").message


def test_deny_list_names_are_caught_even_if_openssl_dropped_them() -> None:
    assert "denied" in rejects(check_ciphers, "RC4", POLICY, "f").message
    assert "denied" in rejects(check_ciphers, "ECDHE+AESGCM:3DES", POLICY, "f").message
    assert "denied" in rejects(check_ciphers, "ECDHE+aNULL", POLICY, "f").message


def test_removals_of_denied_aliases_are_fine() -> None:
    value = "HIGH:!aNULL:!kRSA:!PSK:!SRP:!CAMELLIA:!ARIA:!RC4"
    assert check_ciphers(value, POLICY, "f") == value
    assert check_ciphers("ECDHE+AESGCM, ECDHE+CHACHA20", POLICY, "f") == (
        "ECDHE+AESGCM:ECDHE+CHACHA20")


def test_unknown_and_malformed_ciphers() -> None:
    assert "not a cipher known" in rejects(check_ciphers, "NOPE-CIPHER", POLICY, "f").message
    assert "invalid cipher token" in rejects(check_ciphers, "A;B", POLICY, "f").message
    assert "removal" in rejects(check_ciphers, "-ALL", POLICY, "f").message


def test_tls13_suites_and_older_ciphers_are_kept_apart() -> None:
    err = rejects(check_ciphers, "TLS_AES_128_GCM_SHA256", POLICY, "x.tls_ciphers")
    assert err.field == "x.tls_ciphers" and "ciphersuite" in err.message
    err = rejects(check_ciphersuites, "ECDHE-RSA-AES128-GCM-SHA256", POLICY, "x.s")
    assert "TLS 1.2-and-older" in err.message
    assert "TLS 1.2-and-older" in rejects(check_ciphersuites, "HIGH", POLICY, "f").message
    assert check_ciphersuites("TLS_AES_256_GCM_SHA384", POLICY, "f") == "TLS_AES_256_GCM_SHA384"
    assert "denied" in rejects(check_ciphersuites, "TLS_AES_128_CCM_8_SHA256", POLICY,
                               "f").message
    assert "not a TLS 1.3" in rejects(check_ciphersuites, "TLS_FAKE_SHA1", POLICY, "f").message


def test_versions_must_be_contiguous_and_above_minimum() -> None:
    assert check_versions(["TLSv1.3", "TLSv1.2"], POLICY, "v") == ("TLSv1.2", "TLSv1.3")
    err = rejects(check_versions, ["TLSv1.1", "TLSv1.3"], TLSPolicy(minimum_version="TLSv1"),
                  "v")
    assert "contiguous" in err.message and "TLSv1.2" in err.message
    assert "below the operator's minimum" in rejects(check_versions, ["TLSv1.1", "TLSv1.2"],
                                                     POLICY, "v").message
    assert rejects(check_versions, ["TLSv9"], POLICY, "v").field == "v[0]"
    lax = TLSPolicy(minimum_version="TLSv1")
    assert check_versions(["TLSv1", "TLSv1.1", "TLSv1.2"], lax, "v") == ("TLSv1.0", "TLSv1.2")


def test_alpn_list() -> None:
    assert check_alpn(["h2", "http/1.1"], "a") == ("h2", "http/1.1")
    assert rejects(check_alpn, ["spdy/3"], "a").field == "a[0]"
    assert "twice" in rejects(check_alpn, ["h2", "h2"], "a").message


def test_listener_ciphers_checked_at_render_with_field_name() -> None:
    doc = case("tls_termination")
    doc["listeners"][0]["tls_ciphers"] = "HIGH"
    with pytest.raises(ValidationError) as info:
        render(doc, amphora_id=AMP_A, target=GOLDEN_TARGET)
    assert info.value.field == "listeners[0].tls_ciphers"
    doc = case("tls_termination")
    doc["listeners"][0]["tls_versions"] = ["TLSv1.1", "TLSv1.3"]
    with pytest.raises(ValidationError) as info:
        render(doc, amphora_id=AMP_A, target=GOLDEN_TARGET,
               options=RenderOptions(policy=TLSPolicy(minimum_version="TLSv1")))
    assert info.value.field == "listeners[0].tls_versions"


def test_operator_defaults_apply_when_listener_is_silent() -> None:
    policy = TLSPolicy(listener_ciphers="ECDHE+CHACHA20", listener_versions=("TLSv1.3",))
    text = render(case("reencrypt"), amphora_id=AMP_A, target=GOLDEN_TARGET,
                  options=RenderOptions(policy=policy))
    bind = next(line for line in text.splitlines() if line.strip().startswith("bind "))
    assert 'ciphers "ECDHE+CHACHA20"' in bind and "ssl-min-ver TLSv1.3" in bind
