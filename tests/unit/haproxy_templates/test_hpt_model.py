"""Model validation: bad input raises ValidationError naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from hpt_cases import case, uid

from haproxy_templates import LoadBalancer, ValidationError, cert_filename
from haproxy_templates.model import ClientAuth, ListenerProtocol


def error_of(doc: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        LoadBalancer.from_dict(doc)
    return info.value


def test_port_out_of_range_names_the_field() -> None:
    doc = case("http")
    doc["listeners"][0]["protocol_port"] = 70000
    err = error_of(doc)
    assert err.field == "listeners[0].protocol_port"
    assert str(err) == "listeners[0].protocol_port: must be 1..65535"


@pytest.mark.parametrize(("mutate", "field", "fragment"), [
    (lambda d: d["listeners"][0].update(protocol="FTP"), "listeners[0].protocol",
     "must be one of"),
    (lambda d: d["listeners"][0].update(colour="blue"), "listeners[0].colour", "unknown field"),
    (lambda d: d.update(flavour="x"), "flavour", "unknown field"),
    (lambda d: d["pools"][0]["members"][0].update(address="not-an-ip"),
     "pools[0].members[0].address", "IPv4 or IPv6"),
    (lambda d: d["pools"][0]["members"][1].update(id=d["pools"][0]["members"][0]["id"]),
     "pools[0].members[1].id", "duplicate"),
    (lambda d: d["pools"][0]["members"][0].update(weight=257), "pools[0].members[0].weight",
     "0..256"),
    (lambda d: d["pools"][0]["members"][0].update(protocol_port="80"),
     "pools[0].members[0].protocol_port", "integer"),
    (lambda d: d["listeners"][0].update(default_pool_id=uid(999)),
     "listeners[0].default_pool_id", "no pool"),
    (lambda d: d["listeners"][0].update(id="not-a-uuid"), "listeners[0].id", "UUID"),
    (lambda d: d["listeners"][0].update(connection_limit=0), "listeners[0].connection_limit",
     "-1"),
    (lambda d: d["listeners"][0].update(insert_headers={"X-SSL-Client-DN": "true"}),
     "listeners[0].insert_headers.X-SSL-Client-DN", "cannot be inserted"),
    (lambda d: d["listeners"][0].update(insert_headers={"X-Forwarded-For": "yes"}),
     "listeners[0].insert_headers.X-Forwarded-For", "true or false"),
    (lambda d: d["listeners"][0].update(allowed_cidrs=["10.0.0.0/33"]),
     "listeners[0].allowed_cidrs[0]", "CIDR"),
    (lambda d: d["listeners"][0].update(default_tls_container_ref="default.pem"),
     "listeners[0].default_tls_container_ref", "only applies to TERMINATED_HTTPS"),
    (lambda d: d["pools"][0]["healthmonitor"].update(url_path="no-slash"),
     "pools[0].healthmonitor.url_path", "absolute URL path"),
    (lambda d: d["pools"][0]["healthmonitor"].update(expected_codes="600"),
     "pools[0].healthmonitor.expected_codes", "status code"),
    (lambda d: d["pools"][0].update(healthmonitor={"id": uid(9), "type": "UDP-CONNECT",
                                                   "delay": 5, "timeout": 3,
                                                   "max_retries": 2}),
     "pools[0].healthmonitor.type", "do not apply"),
    (lambda d: d["pools"][0]["healthmonitor"].update(domain_name="x.example"),
     "pools[0].healthmonitor.domain_name", "http_version 1.1"),
    (lambda d: d["pools"][0].update(session_persistence={"type": "APP_COOKIE"}),
     "pools[0].session_persistence.cookie_name", "required"),
    (lambda d: d["pools"][0].update(session_persistence={"type": "APP_COOKIE",
                                                         "cookie_name": "a b"}),
     "pools[0].session_persistence.cookie_name", "cookie name"),
    (lambda d: d["pools"][0].update(ca_tls_container_ref="ca.pem"),
     "pools[0].ca_tls_container_ref", "tls_enabled"),
    (lambda d: d["pools"][0].update(lb_algorithm="SOURCE_IP_PORT"), "pools[0].lb_algorithm",
     "UDP and SCTP"),
    (lambda d: d.update(vip_address="300.1.1.1"), "vip_address", "IPv4 or IPv6"),
    (lambda d: d.update(topology="ACTIVE_STANDBY"), "amphorae[0].vrrp_ip", "required"),
])
def test_invalid_input_names_field(mutate, field: str, fragment: str) -> None:
    doc = case("http")
    mutate(doc)
    err = error_of(doc)
    assert err.field == field
    assert fragment in err.message


def test_port_clash_between_listeners() -> None:
    doc = case("persistence")
    doc["listeners"][1]["protocol_port"] = doc["listeners"][0]["protocol_port"]
    err = error_of(doc)
    assert err.field == "listeners[1].protocol_port"
    assert "listeners[0]" in err.message


def test_udp_and_tcp_may_share_a_port_number() -> None:
    doc = case("health_monitors")
    doc["listeners"][-2]["protocol_port"] = doc["listeners"][0]["protocol_port"]
    lb = LoadBalancer.from_dict(doc)
    assert lb.listeners[-2].protocol is ListenerProtocol.UDP


def test_pool_cannot_be_default_of_two_listeners() -> None:
    doc = case("persistence")
    doc["listeners"][1]["default_pool_id"] = doc["listeners"][0]["default_pool_id"]
    err = error_of(doc)
    assert err.field == "listeners[1].default_pool_id"
    assert "already the default pool" in err.message


def test_cookie_persistence_needs_http_listener() -> None:
    doc = case("persistence")
    doc["pools"][2]["session_persistence"] = {"type": "HTTP_COOKIE"}
    err = error_of(doc)
    assert err.field == "pools[2].session_persistence.type"


def test_incompatible_pool_protocol() -> None:
    doc = case("http")
    doc["pools"][0]["protocol"] = "TCP"
    doc["pools"][0].pop("healthmonitor")
    err = error_of(doc)
    assert err.field == "listeners[0].default_pool_id"
    assert "HTTP listener cannot use a TCP pool" in err.message


def test_l7_rules_need_http_and_ssl_rules_need_termination() -> None:
    doc = case("l7_policies")
    doc["listeners"][0]["l7policies"][0]["rules"][0] = {
        "id": uid(77), "type": "SSL_CONN_HAS_CERT", "compare_type": "EQUAL_TO", "value": "True"}
    err = error_of(doc)
    assert err.field == "listeners[0].l7policies[0].rules[0].type"
    doc = case("tcp")
    doc["listeners"][0]["l7policies"] = case("l7_policies")["listeners"][0]["l7policies"]
    assert error_of(doc).field == "listeners[0].l7policies"


def test_invalid_regex_and_redirect_url_rejected() -> None:
    doc = case("l7_policies")
    doc["listeners"][0]["l7policies"][3]["rules"][1]["value"] = "(unclosed"
    err = error_of(doc)
    assert err.field == "listeners[0].l7policies[3].rules[1].value"
    assert "regular expression" in err.message
    doc = case("l7_policies")
    doc["listeners"][0]["l7policies"][1]["redirect_url"] = "javascript:alert(1)"
    assert error_of(doc).field == "listeners[0].l7policies[1].redirect_url"


def test_terminated_https_requirements() -> None:
    doc = case("tls_termination")
    del doc["listeners"][0]["client_ca_tls_container_ref"]
    err = error_of(doc)
    assert err.field == "listeners[0].client_ca_tls_container_ref"
    doc = case("tls_termination")
    del doc["listeners"][0]["default_tls_container_ref"]
    assert error_of(doc).field == "listeners[0].default_tls_container_ref"


def test_octavia_bookkeeping_keys_are_accepted() -> None:
    doc = case("tls_termination")
    doc.update(provisioning_status="ACTIVE", project_id="p", vip_subnet_id=uid(5))
    doc["listeners"][0].update(operating_status="ONLINE", loadbalancers=[{"id": doc["id"]}])
    lb = LoadBalancer.from_dict(doc)
    tls = lb.listeners[0].tls
    assert tls.client_auth is ClientAuth.MANDATORY
    assert tls.sni_certs == ("sni1.pem", "sni2.pem")


def test_container_refs_map_to_pem_files() -> None:
    assert cert_filename("server.pem") == "server.pem"
    url = "https://barbican.example/v1/containers/" + uid(3)
    mapped = cert_filename(url)
    assert mapped.endswith(".pem") and len(mapped) == 44 and mapped == cert_filename(url)
    for bad in ("../etc/passwd.pem", "a b.pem", "x.crt", "/abs.pem"):
        with pytest.raises(ValueError):
            cert_filename(bad)


def test_l7_policies_sorted_by_position() -> None:
    doc = case("l7_policies")
    doc["listeners"][0]["l7policies"].reverse()
    lb = LoadBalancer.from_dict(doc)
    assert [p.position for p in lb.listeners[0].l7policies] == [1, 2, 3, 4, 5, 6]


def test_octavia_api_response_shape_is_accepted() -> None:
    """Octavia's GET responses carry nulls, empty lists and TLS defaults everywhere."""
    doc = case("http")
    doc.update(description="", vip_port_id=uid(7), provider="amphora", flavor_id=None,
               additional_vips=[])
    doc["listeners"][0].update(
        default_tls_container_ref=None, sni_container_refs=[], client_authentication="NONE",
        client_ca_tls_container_ref=None, client_crl_container_ref=None,
        tls_ciphers="ECDHE-RSA-AES128-GCM-SHA256", tls_versions=["TLSv1.2", "TLSv1.3"],
        alpn_protocols=["h2", "http/1.1"], hsts_max_age=None, hsts_include_subdomains=False,
        hsts_preload=False, timeout_tcp_inspect=None, l7policies=[], tags=[])
    doc["pools"][0].update(tls_enabled=False, tls_ciphers="ECDHE-RSA-AES128-GCM-SHA256",
                           tls_versions=["TLSv1.2"], alpn_protocols=["http/1.1"],
                           tls_container_ref=None, ca_tls_container_ref=None,
                           crl_container_ref=None, listeners=[{"id": uid(1)}])
    lb = LoadBalancer.from_dict(doc)
    assert lb.listeners[0].tls.ciphers is None and lb.pools[0].tls.ciphers is None
    assert lb.listeners[0].timeouts.tcp_inspect == 0
    doc["listeners"][0]["sni_container_refs"] = ["sni1.pem"]
    assert error_of(doc).field == "listeners[0].sni_container_refs"
