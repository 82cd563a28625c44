"""Representative load balancers (Octavia API v2 documents) for golden tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from haproxy_templates import Target

LB_ID = "0b7e2d3c-1a2b-4c5d-8e9f-000000000001"
AMP_A = "a0000000-0000-4000-8000-00000000000a"
AMP_B = "b0000000-0000-4000-8000-00000000000b"

# Golden files are rendered for this target so they do not depend on the machine.
GOLDEN_TARGET = Target(haproxy_version="2.6.12-1+deb12u4", openssl_version="3.0.22",
                       cpu_count=4, memory_kb=4 * 1024 * 1024, fd_limit=1_048_576,
                       services=frozenset({"prometheus-exporter"}))

Doc = dict[str, Any]


def uid(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def member(n: int, address: str, port: int = 8080, **extra: Any) -> Doc:
    return {"id": uid(n), "address": address, "protocol_port": port, **extra}


def monitor(n: int, mtype: str, **extra: Any) -> Doc:
    return {"id": uid(n), "type": mtype, "delay": 5, "timeout": 3, "max_retries": 2, **extra}


def pool(n: int, protocol: str = "HTTP", algorithm: str = "ROUND_ROBIN",
         members: list[Doc] | None = None, **extra: Any) -> Doc:
    if members is None:
        members = [member(n * 100 + 1, "192.0.2.11"), member(n * 100 + 2, "192.0.2.12")]
    return {"id": uid(n), "protocol": protocol, "lb_algorithm": algorithm,
            "members": members, **extra}


def listener(n: int, protocol: str, port: int, pool_n: int | None, **extra: Any) -> Doc:
    doc: Doc = {"id": uid(n), "protocol": protocol, "protocol_port": port, **extra}
    if pool_n is not None:
        doc["default_pool_id"] = uid(pool_n)
    return doc


def lb(listeners: list[Doc], pools: list[Doc], **extra: Any) -> Doc:
    return {"id": LB_ID, "vip_address": "203.0.113.10", "listeners": listeners,
            "pools": pools, "amphorae": [{"id": AMP_A, "role": "STANDALONE"}], **extra}


def http() -> Doc:
    return lb([listener(1, "HTTP", 80, 11, name="web front", connection_limit=5000,
                        timeout_client_data=30000, timeout_member_connect=3000,
                        timeout_member_data=40000,
                        insert_headers={"X-Forwarded-For": "true",
                                        "X-Forwarded-Port": "true",
                                        "X-Forwarded-Proto": True},
                        allowed_cidrs=["198.51.100.0/24", "2001:db8:100::/48"])],
              [pool(11, healthmonitor=monitor(21, "HTTP", url_path="/healthz",
                                              expected_codes="200,204", http_method="HEAD"))])


def tcp() -> Doc:
    members = [member(1101, "192.0.2.11", 5432, weight=10, monitor_address="192.0.2.111",
                      monitor_port=9000),
               member(1102, "192.0.2.12", 5432, weight=0),
               member(1103, "192.0.2.13", 5432, backup=True),
               member(1104, "192.0.2.14", 5432, admin_state_up=False)]
    return lb([listener(1, "TCP", 5432, 11, timeout_tcp_inspect=2000)],
              [pool(11, "TCP", "LEAST_CONNECTIONS", members,
                    healthmonitor=monitor(21, "TCP", max_retries_down=4))])


def tls_termination() -> Doc:
    policies = [
        {"id": uid(31), "action": "REJECT", "position": 1,
         "rules": [{"id": uid(41), "type": "SSL_CONN_HAS_CERT", "compare_type": "EQUAL_TO",
                    "value": "True", "invert": True}]},
        {"id": uid(32), "action": "REJECT", "position": 2,
         "rules": [{"id": uid(42), "type": "SSL_VERIFY_RESULT", "compare_type": "EQUAL_TO",
                    "value": "0", "invert": True}]},
        {"id": uid(33), "action": "REDIRECT_TO_POOL", "position": 3, "redirect_pool_id": uid(12),
         "rules": [{"id": uid(43), "type": "SSL_DN_FIELD", "compare_type": "EQUAL_TO",
                    "key": "OU", "value": "admins"}]},
    ]
    return lb([listener(1, "TERMINATED_HTTPS", 443, 11,
                        default_tls_container_ref="default.pem",
                        sni_container_refs=["sni1.pem", "sni2.pem"],
                        client_authentication="MANDATORY",
                        client_ca_tls_container_ref="client_ca.pem",
                        client_crl_container_ref="client_crl.pem",
                        tls_ciphers="ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL",
                        tls_versions=["TLSv1.2", "TLSv1.3"],
                        alpn_protocols=["h2", "http/1.1"],
                        hsts_max_age=31536000, hsts_include_subdomains=True,
                        hsts_preload=True,
                        insert_headers={h: "true" for h in (
                            "X-Forwarded-For", "X-Forwarded-Proto", "X-SSL-Client-Verify",
                            "X-SSL-Client-Has-Cert", "X-SSL-Client-DN", "X-SSL-Client-CN",
                            "X-SSL-Issuer", "X-SSL-Client-SHA1", "X-SSL-Client-Not-Before",
                            "X-SSL-Client-Not-After")},
                        l7policies=policies)],
              [pool(11), pool(12)])


def reencrypt() -> Doc:
    verified = pool(11, tls_enabled=True, tls_container_ref="pool_client.pem",
                    ca_tls_container_ref="pool_ca.pem", crl_container_ref="pool_crl.pem",
                    tls_versions=["TLSv1.3"], alpn_protocols=["h2", "http/1.1"],
                    healthmonitor=monitor(21, "HTTPS", url_path="/status"))
    unverified = pool(12, tls_enabled=True, tls_ciphers="ECDHE+AESGCM")
    return lb([listener(1, "TERMINATED_HTTPS", 443, 11, default_tls_container_ref="default.pem"),
               listener(2, "HTTP", 80, 12)],
              [verified, unverified])


def persistence() -> Doc:
    return lb([listener(1, "HTTP", 80, 11), listener(2, "HTTP", 81, 12),
               listener(3, "TCP", 82, 13)],
              [pool(11, session_persistence={"type": "HTTP_COOKIE"}),
               pool(12, session_persistence={"type": "APP_COOKIE", "cookie_name": "JSESSIONID",
                                             "persistence_timeout": 600}),
               pool(13, "TCP", "SOURCE_IP", session_persistence={"type": "SOURCE_IP"})])


def health_monitors() -> Doc:
    kinds = [("HTTP", "HTTP", {"http_version": 1.1, "domain_name": "health.example.com",
                               "expected_codes": "200-202", "url_path": "/check?full=1"}),
             ("HTTPS", "HTTPS", {}), ("TCP", "TCP", {}), ("PING", "TCP", {}),
             ("TLS-HELLO", "HTTPS", {})]
    listeners, pools = [], []
    for i, (mtype, proto, extra) in enumerate(kinds):
        lproto = "HTTP" if proto == "HTTP" else ("HTTPS" if proto == "HTTPS" else "TCP")
        listeners.append(listener(1 + i, lproto, 8000 + i, 11 + i))
        pools.append(pool(11 + i, proto, healthmonitor=monitor(21 + i, mtype, **extra)))
    # LVS listeners are keepalived's job: present in the LB, absent from haproxy.cfg.
    listeners.append(listener(9, "UDP", 53, 19))
    pools.append(pool(19, "UDP", "SOURCE_IP_PORT", [member(1901, "192.0.2.53", 53)],
                      healthmonitor=monitor(29, "UDP-CONNECT")))
    listeners.append(listener(10, "SCTP", 3868, 20))
    pools.append(pool(20, "SCTP", "ROUND_ROBIN", [member(2001, "192.0.2.54", 3868)],
                      healthmonitor=monitor(30, "SCTP")))
    return lb(listeners, pools)


def l7_policies() -> Doc:
    rules_by_compare = [
        {"id": uid(41), "type": "HOST_NAME", "compare_type": "EQUAL_TO",
         "value": "www.example.com"},
        {"id": uid(42), "type": "PATH", "compare_type": "STARTS_WITH", "value": "/api/"},
        {"id": uid(43), "type": "FILE_TYPE", "compare_type": "EQUAL_TO", "value": "jpg"},
        {"id": uid(44), "type": "HEADER", "compare_type": "CONTAINS", "key": "User-Agent",
         "value": "curl"},
        {"id": uid(45), "type": "COOKIE", "compare_type": "ENDS_WITH", "key": "session",
         "value": "-beta", "invert": True},
        {"id": uid(46), "type": "PATH", "compare_type": "REGEX", "value": "^/v[0-9]+/"},
        {"id": uid(47), "type": "FILE_TYPE", "compare_type": "REGEX", "value": "\\.(png|gif)$"},
    ]
    policies = [
        {"id": uid(31), "action": "REJECT", "position": 1, "rules": [rules_by_compare[3]]},
        {"id": uid(32), "action": "REDIRECT_TO_URL", "position": 2,
         "redirect_url": "https://www.example.com/moved?from=%2Fold", "redirect_http_code": 301,
         "rules": [rules_by_compare[0], rules_by_compare[4]]},
        {"id": uid(33), "action": "REDIRECT_PREFIX", "position": 3,
         "redirect_prefix": "https://static.example.com", "rules": [rules_by_compare[2]]},
        {"id": uid(34), "action": "REDIRECT_TO_POOL", "position": 4, "redirect_pool_id": uid(12),
         "rules": [rules_by_compare[1], rules_by_compare[5]]},
        {"id": uid(35), "action": "REDIRECT_TO_POOL", "position": 5, "redirect_pool_id": uid(12),
         "rules": [rules_by_compare[6]]},
        {"id": uid(36), "action": "REJECT", "position": 6, "rules": []},  # never matches
    ]
    return lb([listener(1, "HTTP", 80, 11, l7policies=policies)], [pool(11), pool(12)])


def proxy_protocol() -> Doc:
    return lb([listener(1, "TCP", 25, 11), listener(2, "HTTP", 80, 12)],
              [pool(11, "PROXY", healthmonitor=monitor(21, "TCP")),
               pool(12, "PROXYV2", healthmonitor=monitor(22, "HTTP"))])


def two_vips() -> Doc:
    return lb([listener(1, "HTTP", 80, 11)], [pool(11)],
              additional_vips=[{"ip_address": "2001:db8::10", "subnet_id": uid(99)}])


def ipv6() -> Doc:
    members = [member(1101, "2001:db8:1::11"), member(1102, "2001:db8:1::12")]
    return lb([listener(1, "TCP", 443, 11)],
              [pool(11, "TCP", members=members, session_persistence={"type": "SOURCE_IP"})],
              vip_address="2001:db8::1")


def active_standby() -> Doc:
    return lb([listener(1, "HTTP", 80, 11)],
              [pool(11, session_persistence={"type": "SOURCE_IP"}),
               ],
              topology="ACTIVE_STANDBY",
              amphorae=[{"id": AMP_A, "role": "MASTER", "vrrp_ip": "198.51.100.5",
                         "vrrp_priority": 100},
                        {"id": AMP_B, "role": "BACKUP", "vrrp_ip": "198.51.100.6",
                         "vrrp_priority": 90}])


def tls_passthrough() -> Doc:
    return lb([listener(1, "HTTPS", 443, 11)],
              [pool(11, "HTTPS", "SOURCE_IP", healthmonitor=monitor(21, "TLS-HELLO"))])


def prometheus() -> Doc:
    return lb([listener(1, "PROMETHEUS", 9100, None), listener(2, "HTTP", 80, 11,
                                                               admin_state_up=False)],
              [pool(11, admin_state_up=False)])


CASES: dict[str, Callable[[], Doc]] = {
    "http": http,
    "tcp": tcp,
    "tls_termination": tls_termination,
    "reencrypt": reencrypt,
    "persistence": persistence,
    "health_monitors": health_monitors,
    "l7_policies": l7_policies,
    "proxy_protocol": proxy_protocol,
    "two_vips": two_vips,
    "ipv6": ipv6,
    "active_standby": active_standby,
    "tls_passthrough": tls_passthrough,
    "prometheus": prometheus,
}


def case(name: str) -> Doc:
    return copy.deepcopy(CASES[name]())
