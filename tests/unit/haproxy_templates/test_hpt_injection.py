"""Property tests: hostile strings in any free-text field cannot change the config's shape.

For every field a user controls, a hostile value (newlines, ``#``, quotes,
backslashes, ``$``, spaces, non-ASCII, HAProxy syntax) is either rejected by
the model with a ValidationError, or rendered to a config whose lines and
unquoted words are identical to the config rendered with a benign value: the
value stays inside one quoted word and cannot start a line, a comment or a
keyword.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hpt_cases import AMP_A, GOLDEN_TARGET, case, uid
from hpt_render import assert_valid, render_checked
from hpt_words import quoted_values, skeleton, split_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haproxy_templates import LoadBalancer, ValidationError, quote, render
from haproxy_templates.quoting import unquote

PAYLOADS = [
    "\nfrontend evil\n    bind :1", "x\r\ny", "# comment", "a #b", '"', '" evil "', "'",
    "\\", "\\\"", "$HOME", "${PATH}", "\"$HOME\"", "a b", " -i ", "-m reg", "--", "%[src]",
    "%{+Q}[ssl_c_s_dn]", "é", "☃ snow", "\u2028next", "\x00", "\t", "}", "if TRUE",
    "'; server x 1.2.3.4:80 '", "\\x0a", "\\n",
]

hostile = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(min_size=1, max_size=30),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=8), st.sampled_from(PAYLOADS),
              st.text(max_size=8)),
)

Setter = Callable[[dict[str, Any], str], None]


def _rule(doc: dict[str, Any], index: int) -> dict[str, Any]:
    return doc["listeners"][0]["l7policies"][index // 10]["rules"][index % 10]


# field name -> (base case, setter, benign value, how the value must appear quoted or None)
FIELDS: dict[str, tuple[str, Setter, str, Callable[[str], str] | None]] = {
    "lb.name": ("http", lambda d, v: d.update(name=v), "lb", None),
    "listener.name": ("http", lambda d, v: d["listeners"][0].update(name=v), "web", str),
    "pool.name": ("http", lambda d, v: d["pools"][0].update(name=v), "pool", str),
    "member.name": ("http", lambda d, v: d["pools"][0]["members"][0].update(name=v), "m", None),
    "hm.url_path": ("http", lambda d, v: d["pools"][0]["healthmonitor"].update(url_path=v),
                    "/ok", str),
    "hm.domain_name": ("health_monitors",
                       lambda d, v: d["pools"][0]["healthmonitor"].update(domain_name=v),
                       "a.example", None),
    "hm.expected_codes": ("http",
                          lambda d, v: d["pools"][0]["healthmonitor"].update(expected_codes=v),
                          "200,204", None),
    "hm.http_method": ("http",
                       lambda d, v: d["pools"][0]["healthmonitor"].update(http_method=v),
                       "GET", None),
    "rule.host.value": ("l7_policies", lambda d, v: _rule(d, 10).update(value=v),
                        "www.example.com", str),
    "rule.header.value": ("l7_policies", lambda d, v: _rule(d, 0).update(value=v), "curl", str),
    "rule.header.key": ("l7_policies", lambda d, v: _rule(d, 0).update(key=v), "X-A", None),
    "rule.cookie.key": ("l7_policies", lambda d, v: _rule(d, 11).update(key=v), "sid", None),
    "rule.file_type.value": ("l7_policies", lambda d, v: _rule(d, 20).update(value=v), "png",
                             None),
    "rule.regex.value": ("l7_policies", lambda d, v: _rule(d, 31).update(value=v), "^/x", str),
    "rule.dn.key": ("tls_termination", lambda d, v: _rule(d, 20).update(key=v), "CN", None),
    "rule.dn.value": ("tls_termination", lambda d, v: _rule(d, 20).update(value=v), "ops", str),
    "policy.redirect_url": ("l7_policies",
                            lambda d, v: d["listeners"][0]["l7policies"][1].update(
                                redirect_url=v), "https://a.example/",
                            lambda v: v.replace("%", "%%")),
    "policy.redirect_prefix": ("l7_policies",
                               lambda d, v: d["listeners"][0]["l7policies"][2].update(
                                   redirect_prefix=v), "https://b.example",
                               lambda v: v.replace("%", "%%")),
    "persistence.cookie_name": ("persistence",
                                lambda d, v: d["pools"][1]["session_persistence"].update(
                                    cookie_name=v), "SID", None),
    "listener.tls_ciphers": ("tls_termination",
                             lambda d, v: d["listeners"][0].update(tls_ciphers=v),
                             "ECDHE+AESGCM", None),
    "listener.tls_ciphersuites": ("tls_termination",
                                  lambda d, v: d["listeners"][0].update(tls_ciphersuites=v),
                                  "TLS_AES_256_GCM_SHA384", None),
    "listener.tls_versions": ("tls_termination",
                              lambda d, v: d["listeners"][0].update(tls_versions=[v]),
                              "TLSv1.2", None),
    "listener.alpn": ("tls_termination",
                      lambda d, v: d["listeners"][0].update(alpn_protocols=["h2", v]),
                      "http/1.1", None),
    "pool.tls_ciphers": ("reencrypt", lambda d, v: d["pools"][1].update(tls_ciphers=v),
                         "ECDHE+CHACHA20", None),
    "listener.default_cert": ("tls_termination",
                              lambda d, v: d["listeners"][0].update(
                                  default_tls_container_ref=v), "other.pem", None),
    "listener.sni_ref": ("tls_termination",
                         lambda d, v: d["listeners"][0].update(sni_container_refs=[v]),
                         "https://kms.example/v1/containers/1", None),
    "pool.ca_ref": ("reencrypt", lambda d, v: d["pools"][0].update(ca_tls_container_ref=v),
                    "ca2.pem", None),
    "listener.allowed_cidr": ("http",
                              lambda d, v: d["listeners"][0].update(allowed_cidrs=[v]),
                              "192.0.2.0/24", None),
    "member.address": ("http", lambda d, v: d["pools"][0]["members"][0].update(address=v),
                       "192.0.2.99", None),
    "vip_address": ("http", lambda d, v: d.update(vip_address=v), "203.0.113.99", None),
    "listener.id": ("http", lambda d, v: d["listeners"][0].update(id=v), uid(4242), None),
    "amphora.vrrp_ip": ("active_standby", lambda d, v: d["amphorae"][1].update(vrrp_ip=v),
                        "198.51.100.9", None),
}


# Fields the model parses into a typed value (address, network, version, id) and the
# renderer prints in canonical form, unquoted. A different valid value legitimately
# changes words (or drops a TLS 1.3 keyword), so for these the property is weaker but
# still strict: same lines, same keyword starting each line, and every unquoted word is
# a plain token (no quote, comment, space or escape).
PARSED_FIELDS = frozenset({"amphora.vrrp_ip", "member.address", "vip_address",
                           "listener.allowed_cidr", "listener.tls_versions", "listener.id"})
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_.:/%{}\[\]()+,!@=-]+")


def _same_shape(field: str, text: str, reference: list[tuple[str, ...]]) -> None:
    shape = skeleton(text)
    if field not in PARSED_FIELDS:
        assert shape == reference
        return
    assert [line[0] for line in shape] == [line[0] for line in reference]
    for line in shape:
        for word in line:
            assert word == "<Q>" or _PLAIN_WORD.fullmatch(word), (word, line)


def _render(base: str, setter: Setter, value: str) -> str:
    doc = copy.deepcopy(case(base))
    setter(doc, value)
    return render(LoadBalancer.from_dict(doc), amphora_id=AMP_A, target=GOLDEN_TARGET)


def _assert_clean(text: str) -> None:
    assert text.isascii()
    assert all(ch == "\n" or 32 <= ord(ch) < 127 for ch in text)


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_hostile_values_cannot_inject(field: str) -> None:
    base, setter, benign, expect = FIELDS[field]
    reference = skeleton(_render(base, setter, benign))

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    # Prefixing the benign value gets past "must start with /" style checks.
    @given(st.one_of(hostile, hostile.map(lambda v: benign + v)))
    def check(value: str) -> None:
        try:
            text = _render(base, setter, value)
        except ValidationError:
            return  # the model refused it: fine
        _assert_clean(text)
        _same_shape(field, text, reference)
        if expect is not None:
            assert expect(value) in quoted_values(text)

    check()


def test_quoted_fields_really_accept_hostile_text() -> None:
    """Guard against a vacuous property: where a field is rendered quoted, the model
    accepts hostile payloads (so the skeleton comparison above is exercised) and the
    value arrives intact in exactly one quoted word."""
    for field, (base, setter, benign, expect) in FIELDS.items():
        if expect is None:
            continue
        assert expect(benign) in quoted_values(_render(base, setter, benign)), field
        accepted = []
        for payload in [*PAYLOADS, *(benign + p for p in PAYLOADS)]:
            try:
                text = _render(base, setter, payload)
            except ValidationError:
                continue
            accepted.append(payload)
            assert expect(payload) in quoted_values(text)
        assert accepted, f"{field}: every payload was rejected"


@given(st.text())
def test_quote_round_trips_and_is_one_word(value: str) -> None:
    word = quote(value)
    assert "\n" not in word and "\r" not in word and word.isascii()
    (parsed,) = split_line(f"keyword {word} tail")[1:2]
    assert parsed.quoted
    assert unquote(word) == value


def test_hostile_names_pass_real_haproxy(tmp_path: Path, pki, haproxy_bin) -> None:
    doc = case("http")
    name = 'evil"\n  bind :1 # $HOME \\ \'x\' ☃ %[src]'
    doc["listeners"][0]["name"] = name.replace("\n", " ")
    doc["pools"][0]["name"] = "p\\\"q"
    text, checked = render_checked(doc, tmp_path, pki)
    assert_valid(checked, text)
    assert doc["listeners"][0]["name"] in quoted_values(text)
