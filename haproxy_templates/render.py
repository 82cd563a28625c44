"""Turn a validated LoadBalancer into one HAProxy configuration.

Decisions live here, layout lives in the Jinja2 templates: this module turns
the model into small view objects (numbers computed, TLS checked against the
policy and the target, capabilities enforced), and the templates print them,
passing every user-supplied value through the one ``q`` filter
(:func:`haproxy_templates.quoting.quote`).

Names follow Octavia because the agent's heartbeat and ``/1.0/listeners``
parse them: a frontend is named after its listener id, a backend
``{pool_id}:{listener_id}``, a server after its member id.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from amphora_contract.peers import peer_name
from haproxy_templates import capabilities
from haproxy_templates.errors import ValidationError
from haproxy_templates.model import (
    Algorithm,
    ClientAuth,
    CompareType,
    L7Action,
    L7Rule,
    L7RuleType,
    Listener,
    ListenerProtocol,
    LoadBalancer,
    MonitorType,
    PersistenceType,
    Pool,
    PoolProtocol,
    Topology,
)
from haproxy_templates.quoting import quote
from haproxy_templates.target import Target
from haproxy_templates.tls import (
    TLSPolicy,
    check_alpn,
    check_ciphers,
    check_ciphersuites,
    check_versions,
)

DEFAULT_BASE_PATH = "/var/lib/octavia"
DEFAULT_CERT_DIR = "/var/lib/octavia/certs"
TEMPLATE_DIR = Path(__file__).parent / "templates"

# Rough per-connection memory (kB): two 16 kB buffers plus bookkeeping, and an
# OpenSSL session on top for TLS. HAProxy's own guidance is ~33 kB plain.
_CONN_KB_PLAIN = 34
_CONN_KB_TLS = 64
# Resident bytes per tune.ssl.cachesize entry, measured on HAProxy 2.6 (RSS of
# 1,000,000 entries minus 1,000): the whole cache is allocated and touched at
# start, full or empty, and an old worker keeps its own until it exits.
_SSL_CACHE_ENTRY_BYTES = 248
_SSL_CACHE_MAX_ENTRIES = 1_000_000
_MAX_THREADS = 64
_MAX_UNIX_PATH = 97  # HAProxy's limit for a UNIX socket path (sun_path minus its suffixes)


@dataclass(frozen=True)
class Defaults:
    """Timeouts for the ``defaults`` section, in milliseconds."""

    connect: int = 5000
    client: int = 50000
    server: int = 50000
    http_request: int = 10000  # slowloris: the whole request head must arrive in time
    http_keep_alive: int = 10000
    queue: int = 60000
    tunnel: int = 3600000  # WebSocket / CONNECT tunnels
    check: int = 5000
    client_fin: int = 10000
    server_fin: int = 10000


@dataclass(frozen=True)
class RenderOptions:
    """Operator settings that are not part of the LB document."""

    base_path: str = DEFAULT_BASE_PATH
    cert_dir: str = DEFAULT_CERT_DIR
    policy: TLSPolicy = field(default_factory=TLSPolicy)
    defaults: Defaults = field(default_factory=Defaults)
    peer_port: int = 1025
    user: str = "nobody"
    group: str = "nogroup"
    log_target: str = "/dev/log"
    user_log_facility: str = "local0"
    admin_log_facility: str = "local1"
    hard_stop_after: str = "10m"
    ping_script: str = "/var/lib/octavia/ping-wrapper.sh"
    default_listener_maxconn: int = 50000
    memory_fraction: float = 0.5  # of the amphora's RAM that connections may use
    # of RAM for the TLS session caches of the old and the new worker together
    ssl_cache_fraction: float = 0.02
    stick_table_size: str = "10k"
    # Any idle member connection may carry the first request of a new client
    # connection (HAProxy's "always"). With more than one thread "aggressive"
    # reuses far less: a new-connection-per-request load costs 0.51x the
    # HAProxy CPU with "always" at 2 threads (1.7x the requests/s), and the
    # same at 1 thread (docs/haproxy.md, "Tuning"). "aggressive" or "safe"
    # when members may drop idle connections without warning and clients
    # never retry.
    http_reuse: str = "always"
    # One log line per request or connection to the user facility (Octavia's
    # [haproxy_amphora] connection_logging). Off: only HAProxy's own notices,
    # on the admin facility; the syslog daemon then receives nothing per request
    # (docs/haproxy.md, "Tuning": +30% HTTP keep-alive requests/s here).
    connection_logging: bool = True
    persistence_cookie: str = "SRV"
    prometheus_bind: str | None = None  # e.g. "127.0.0.1:9101": internal exporter frontend
    # the exporter on {base_path}/{lb_id}/prometheus.sock, where the agent's
    # /1.0/ext/metrics reads it (docs/agent.md, "Metrics")
    prometheus_socket: bool = False
    # protocol glitches one HTTP/2 connection may cause before HAProxy closes it (HAProxy's
    # manual suggests about 1000 for frontends); rendered where HTTP/2 is offered
    h2_glitches_threshold: int = 1000
    # fetch and staple OCSP responses for listener certificates where the image can
    # (HAProxy 3.0+); quietly off on older images, as a fleet may mix them
    ocsp_update: bool = False


_AMPHORA_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PATH_RE = re.compile(r"/[A-Za-z0-9._/-]{0,200}")
_LOG_TARGET_RE = re.compile(r"[A-Za-z0-9._/:@\[\]-]{1,200}")
_ACCOUNT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp",
               "cron", "auth2", "ftp", "ntp", "audit", "alert", "cron2",
               *(f"local{i}" for i in range(8)))
_TIME_RE = re.compile(r"[0-9]{1,9}(us|ms|s|m|h|d)?")
_SIZE_RE = re.compile(r"[0-9]{1,12}[kmg]?")
_COOKIE_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_HTTP_REUSE = ("never", "safe", "aggressive", "always")
_BIND_RE = re.compile(r"[A-Za-z0-9.:\[\]*-]{1,64}:[0-9]{1,5}")


def check_identifiers(amphora_id: str, options: RenderOptions) -> None:
    """Whole-string checks of every value the renderer is given besides the
    LB document (which the model validates): ``amphora_id`` is printed
    unquoted (comment, peer name), and no option may carry a control
    character or a second word into the config."""
    if not isinstance(amphora_id, str) or not _AMPHORA_ID_RE.fullmatch(amphora_id.lower()):
        raise ValidationError("amphora_id", "must be a UUID")
    patterns: dict[str, re.Pattern[str] | tuple[str, ...]] = {
        "base_path": _PATH_RE, "cert_dir": _PATH_RE, "ping_script": _PATH_RE,
        "log_target": _LOG_TARGET_RE, "user": _ACCOUNT_RE, "group": _ACCOUNT_RE,
        "user_log_facility": _FACILITIES, "admin_log_facility": _FACILITIES,
        "hard_stop_after": _TIME_RE, "stick_table_size": _SIZE_RE,
        "persistence_cookie": _COOKIE_RE, "http_reuse": _HTTP_REUSE,
    }
    if options.prometheus_bind is not None:
        patterns["prometheus_bind"] = _BIND_RE
    threshold = options.h2_glitches_threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not (
            1 <= threshold <= 1_000_000):
        raise ValidationError("options.h2_glitches_threshold", "must be 1..1000000")
    for name, rule in patterns.items():
        value = getattr(options, name)
        ok = isinstance(value, str) and (
            value in rule if isinstance(rule, tuple) else bool(rule.fullmatch(value)))
        if not ok or (rule is _PATH_RE and "/../" in f"{value}/"):
            raise ValidationError(f"options.{name}", f"{value!r} is not valid here")


def backend_name(pool_id: str, listener_id: str) -> str:
    return f"{pool_id}:{listener_id}"


def peers_section_name(lb_id: str) -> str:
    return lb_id.replace("-", "") + "_peers"


def persistence_cookie_value(pool_id: str, member_id: str) -> str:
    """Cookie value naming a member without revealing its id."""
    return hashlib.sha256(f"{pool_id}/{member_id}".encode()).hexdigest()[:16]


def _addr(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    return f"{ip.compressed}:{port}"


def _ms(value: int) -> str:
    return f"{value}ms" if value % 1000 else f"{value // 1000}s"


@dataclass
class _Ctx:
    lb: LoadBalancer
    target: Target
    options: RenderOptions
    # "listener"/"pool" when some bind/server line offers h2: the glitch caps go global
    h2_sides: set[str] = field(default_factory=set)
    quic: bool = False

    @property
    def versions(self) -> capabilities.Versions:
        return self.target.versions

    def supports(self, feature: str) -> bool:
        return capabilities.supports(self.versions, feature)

    def require(self, feature: str, field_path: str) -> None:
        capabilities.require(self.versions, feature, field_path)

    def cert(self, filename: str) -> str:
        return f"{self.options.cert_dir.rstrip('/')}/{self.lb.id}/{filename}"


# ---------------------------------------------------------------- TLS settings

def _tls_settings(ctx: _Ctx, *, side: str, path: str, ciphers: str | None,
                  ciphersuites: str | None, versions: tuple[str, ...] | None,
                  alpn: tuple[str, ...] | None, http: bool) -> dict[str, Any]:
    """Validated ciphers/ciphersuites/min/max/alpn for a bind (side=listener) or server line.

    Explicit values are checked and must be supported by the target; operator
    defaults are quietly trimmed to what the target supports.
    """
    policy = ctx.options.policy
    listener = side == "listener"
    if versions is not None:
        min_ver, max_ver = check_versions(versions, policy, f"{path}.tls_versions")
        if max_ver == "TLSv1.3":
            ctx.require("tls13", f"{path}.tls_versions")
    else:
        default = policy.listener_versions if listener else policy.pool_versions
        if not ctx.supports("tls13"):
            default = tuple(v for v in default if v != "TLSv1.3") or ("TLSv1.2",)
        min_ver, max_ver = check_versions(default, policy, "policy.versions")
    if ciphers is not None:
        cipher_string = check_ciphers(ciphers, policy, f"{path}.tls_ciphers")
    else:
        cipher_string = check_ciphers(
            policy.listener_ciphers if listener else policy.pool_ciphers, policy,
            "policy.ciphers")
    suites = None
    if ciphersuites is not None:
        ctx.require("tls13_ciphersuites", f"{path}.tls_ciphersuites")
        if max_ver != "TLSv1.3":
            raise ValidationError(f"{path}.tls_ciphersuites", "set, but TLSv1.3 is not enabled")
        suites = check_ciphersuites(ciphersuites, policy, f"{path}.tls_ciphersuites")
    elif max_ver == "TLSv1.3" and ctx.supports("tls13_ciphersuites"):
        suites = check_ciphersuites(
            policy.listener_ciphersuites if listener else policy.pool_ciphersuites, policy,
            "policy.ciphersuites")
    alpn_list: tuple[str, ...] = ()
    h2_feature = "http2_frontend" if listener else "http2_backend"
    h3 = False
    if alpn is not None:
        field_path = f"{path}.alpn_protocols"
        alpn_list = check_alpn(alpn, field_path)
        if "h3" in alpn_list:
            if not listener:
                raise ValidationError(field_path, "h3 (HTTP/3 over QUIC) is for listeners; "
                                      "members are reached over TCP")
            ctx.require("quic_listener", field_path)
            if max_ver != "TLSv1.3":
                raise ValidationError(field_path, "h3 needs TLSv1.3 (QUIC is TLS 1.3 only)")
            h3, alpn_list = True, tuple(p for p in alpn_list if p != "h3")
        if "h2" in alpn_list and not ctx.supports(h2_feature):
            # Offered among fallbacks (Octavia's default list), h2 is dropped and clients
            # negotiate HTTP/1.1; a listener or pool that speaks only h2 cannot be served.
            alpn_list = tuple(p for p in alpn_list if p != "h2")
            if not alpn_list:
                ctx.require(h2_feature, field_path)
    elif http:
        alpn_list = tuple(p for p in (policy.listener_alpn if listener else policy.pool_alpn)
                          if p != "h2" or ctx.supports(h2_feature))
    if "h2" in alpn_list:
        ctx.h2_sides.add(side)
    return {"ciphers": cipher_string, "ciphersuites": suites, "min_ver": min_ver,
            "max_ver": max_ver, "alpn": ",".join(alpn_list) if alpn_list else None,
            "h3": h3}


# ------------------------------------------------------------------ frontends

_MATCH = {CompareType.EQUAL_TO: "str", CompareType.STARTS_WITH: "beg",
          CompareType.ENDS_WITH: "end", CompareType.CONTAINS: "sub", CompareType.REGEX: "reg"}

_CLIENT_CERT_HEADER_VALUES = {
    "X-SSL-Client-Verify": "%[ssl_c_verify]",
    "X-SSL-Client-Has-Cert": "%[ssl_c_used]",
    "X-SSL-Client-DN": "%{+Q}[ssl_c_s_dn]",
    "X-SSL-Client-CN": "%{+Q}[ssl_c_s_dn(cn)]",
    "X-SSL-Issuer": "%{+Q}[ssl_c_i_dn]",
    "X-SSL-Client-SHA1": "%{+Q}[ssl_c_sha1,hex]",
    "X-SSL-Client-Not-Before": "%{+Q}[ssl_c_notbefore]",
    "X-SSL-Client-Not-After": "%{+Q}[ssl_c_notafter]",
}


def _acl(rule: L7Rule) -> dict[str, Any]:
    """One ACL line: fetch, flags and pattern. Fetch words are ours; patterns are quoted."""
    name = "rule_" + rule.id.replace("-", "")
    flags = ["-m", _MATCH[rule.compare_type]]
    value = rule.value
    if rule.type is L7RuleType.HOST_NAME:
        fetch, flags = "req.hdr(host),field(1,:)", ["-i", *flags]
    elif rule.type is L7RuleType.PATH:
        fetch = "path"
    elif rule.type is L7RuleType.FILE_TYPE:
        fetch = "path"
        if rule.compare_type is CompareType.EQUAL_TO:
            flags, value = ["-m", "end"], "." + value.lstrip(".")
    elif rule.type is L7RuleType.HEADER:
        fetch = f"req.hdr({rule.key})"
    elif rule.type is L7RuleType.COOKIE:
        fetch = f"req.cook({rule.key})"
    elif rule.type is L7RuleType.SSL_DN_FIELD:
        fetch = f"ssl_c_s_dn({rule.key})"
    elif rule.type is L7RuleType.SSL_CONN_HAS_CERT:
        return {"name": name, "fetch": "ssl_c_used", "flags": [], "value": None}
    else:  # SSL_VERIFY_RESULT
        return {"name": name, "fetch": "ssl_c_verify", "flags": ["-m", "int"],
                "value": str(int(value))}
    return {"name": name, "fetch": fetch, "flags": flags, "value": value}


def _frontend(ctx: _Ctx, li: int, listener: Listener, global_maxconn: int) -> dict[str, Any]:
    path = f"listeners[{li}]"
    opts = ctx.options
    lb = ctx.lb
    limit = (listener.connection_limit if listener.connection_limit > 0
             else opts.default_listener_maxconn)
    http = listener.is_http or listener.protocol is ListenerProtocol.PROMETHEUS
    fe: dict[str, Any] = {
        "name": listener.id,
        "description": listener.name,
        "mode": "http" if http else "tcp",
        "enabled": listener.admin_state_up,
        "maxconn": min(limit, global_maxconn),
        "binds": [_addr(vip, listener.protocol_port) for vip in lb.vips],
        "transparent": lb.topology is Topology.ACTIVE_STANDBY,
        "tls": None,
        "quic_binds": [],
        "allowed_cidrs": [n.compressed for n in listener.allowed_cidrs],
        "timeout_client": _ms(listener.timeouts.client_data),
        "inspect_delay": (_ms(listener.timeouts.tcp_inspect)
                          if listener.timeouts.tcp_inspect else None),
        "forwardfor": "X-Forwarded-For" in listener.insert_headers,
        "set_headers": [],
        "response_headers": [],
        "acls": [],
        "rules": [],
        "use_backends": [],
        "default_backend": (backend_name(listener.default_pool_id, listener.id)
                            if listener.default_pool_id else None),
        "prometheus": listener.protocol is ListenerProtocol.PROMETHEUS,
        "idle_close_on_response": http and ctx.supports("idle_close_on_response"),
    }
    if fe["prometheus"]:
        ctx.require("prometheus_exporter", f"{path}.protocol")
    if listener.protocol is ListenerProtocol.TERMINATED_HTTPS:
        t = listener.tls
        settings = _tls_settings(ctx, side="listener", path=path, ciphers=t.ciphers,
                                 ciphersuites=t.ciphersuites, versions=t.versions,
                                 alpn=t.alpn, http=True)
        assert t.default_cert is not None
        fe["tls"] = {
            **settings,
            "certs": [ctx.cert(t.default_cert), *(ctx.cert(c) for c in t.sni_certs)],
            "verify": {ClientAuth.NONE: None, ClientAuth.OPTIONAL: "optional",
                       ClientAuth.MANDATORY: "required"}[t.client_auth],
            "ca": ctx.cert(t.client_ca) if t.client_ca else None,
            "crl": ctx.cert(t.client_crl) if t.client_crl else None,
        }
        if settings["h3"]:
            ctx.quic = True
            fe["quic_binds"] = [f"quic{vip.version}@{_addr(vip, listener.protocol_port)}"
                                for vip in lb.vips]
            fe["response_headers"].append(
                ("alt-svc", f'h3=":{listener.protocol_port}"; ma=900'))
        if t.hsts_max_age is not None:
            hsts = f"max-age={t.hsts_max_age}"
            hsts += "; includeSubDomains" if t.hsts_include_subdomains else ""
            hsts += "; preload" if t.hsts_preload else ""
            fe["response_headers"].append(("Strict-Transport-Security", hsts))
    if "X-Forwarded-Port" in listener.insert_headers:
        fe["set_headers"].append(("X-Forwarded-Port", "%[dst_port]"))
    if "X-Forwarded-Proto" in listener.insert_headers:
        proto = "https" if listener.protocol is ListenerProtocol.TERMINATED_HTTPS else "http"
        fe["set_headers"].append(("X-Forwarded-Proto", proto))
    for header, value in _CLIENT_CERT_HEADER_VALUES.items():
        if header in listener.insert_headers:
            fe["set_headers"].append((header, value))
    for policy in listener.l7policies:
        rules = [r for r in policy.rules if r.admin_state_up]
        if not policy.admin_state_up or not rules:
            continue  # Octavia: a policy without (enabled) rules never matches
        cond = []
        for rule in rules:
            acl = _acl(rule)
            fe["acls"].append(acl)
            cond.append(("!" if rule.invert else "") + acl["name"])
        condition = " ".join(cond)
        if policy.action is L7Action.REJECT:
            fe["rules"].append({"kind": "deny", "cond": condition})
        elif policy.action is L7Action.REDIRECT_TO_URL:
            fe["rules"].append({"kind": "redirect", "how": "location", "to": policy.redirect_url,
                                "code": policy.redirect_http_code, "cond": condition})
        elif policy.action is L7Action.REDIRECT_PREFIX:
            fe["rules"].append({"kind": "redirect", "how": "prefix", "to": policy.redirect_prefix,
                                "code": policy.redirect_http_code, "cond": condition})
        else:
            assert policy.redirect_pool_id is not None
            fe["use_backends"].append({"backend": backend_name(policy.redirect_pool_id,
                                                               listener.id),
                                       "cond": condition})
    return fe


# ------------------------------------------------------------------- backends

def _backend(ctx: _Ctx, listener: Listener, pool: Pool, peers: str | None) -> dict[str, Any]:
    pi = ctx.lb.pools.index(pool)
    path = f"pools[{pi}]"
    opts = ctx.options
    http_mode = listener.is_http
    be: dict[str, Any] = {
        "name": backend_name(pool.id, listener.id),
        "description": pool.name,
        "mode": "http" if http_mode else "tcp",
        "balance": {Algorithm.ROUND_ROBIN: "roundrobin",
                    Algorithm.LEAST_CONNECTIONS: "leastconn",
                    Algorithm.SOURCE_IP: "source"}[pool.lb_algorithm],
        "timeout_connect": _ms(listener.timeouts.member_connect),
        "timeout_server": _ms(listener.timeouts.member_data),
        "stick": None,
        "cookie": None,
        "check": None,
        "allbackups": any(m.backup for m in pool.members),
        "servers": [],
    }
    sp = pool.session_persistence
    if sp is not None:
        expire = f"{sp.persistence_timeout}s"
        if sp.type is PersistenceType.SOURCE_IP:
            key = "ipv6" if any(v.version == 6 for v in ctx.lb.vips) else "ip"
            be["stick"] = {"table": f"type {key} size {opts.stick_table_size} expire {expire}",
                           "peers": peers, "cookie_name": None}
        elif sp.type is PersistenceType.APP_COOKIE:
            be["stick"] = {"table": f"type string len 64 size {opts.stick_table_size} "
                           f"expire {expire}", "peers": peers,
                           "cookie_name": sp.cookie_name}
        else:
            be["cookie"] = {"name": opts.persistence_cookie,
                            "secure": listener.protocol is ListenerProtocol.TERMINATED_HTTPS}
    hm = pool.healthmonitor if pool.healthmonitor and pool.healthmonitor.admin_state_up else None
    check_ssl = False
    if hm is not None:
        check: dict[str, Any] = {"type": hm.type.value, "inter": f"{hm.delay}s",
                                 "timeout": f"{hm.timeout}s", "rise": hm.max_retries,
                                 "fall": hm.max_retries_down, "http": None, "external": None}
        if hm.type in (MonitorType.HTTP, MonitorType.HTTPS):
            check["http"] = {"method": hm.http_method, "uri": hm.url_path,
                             "version": f"HTTP/{hm.http_version}", "host": hm.domain_name,
                             "send": ctx.supports("http_check_send"),
                             "status": None if hm.expected_codes_regex else hm.expected_codes,
                             "rstatus": hm.expected_codes_regex}
            if hm.domain_name and not ctx.supports("http_check_send"):
                ctx.require("http_check_send", f"{path}.healthmonitor.domain_name")
        if hm.type in (MonitorType.HTTPS, MonitorType.TLS_HELLO) and not pool.tls_enabled:
            check_ssl = True
        if hm.type is MonitorType.PING:
            check["external"] = opts.ping_script
        be["check"] = check
    proxy = {PoolProtocol.PROXY: "send-proxy", PoolProtocol.PROXYV2: "send-proxy-v2"}.get(
        pool.protocol)
    tls = None
    if pool.tls_enabled:
        t = pool.tls
        tls = {
            **_tls_settings(ctx, side="pool", path=path, ciphers=t.ciphers,
                            ciphersuites=t.ciphersuites, versions=t.versions, alpn=t.alpn,
                            http=http_mode),
            "crt": ctx.cert(t.client_cert) if t.client_cert else None,
            "ca": ctx.cert(t.ca) if t.ca else None,
            "crl": ctx.cert(t.crl) if t.crl else None,
        }
    for member in pool.members:
        words: list[str] = [f"weight {member.weight}"]
        if hm is not None:
            words.append(f"check inter {be['check']['inter']} fall {hm.max_retries_down} "
                         f"rise {hm.max_retries}")
            if member.monitor_address is not None:
                words.append(f"addr {member.monitor_address.compressed}")
            if member.monitor_port is not None:
                words.append(f"port {member.monitor_port}")
            if proxy is not None:
                words.append("check-send-proxy")
        if be["cookie"] is not None:
            words.append(f"cookie {persistence_cookie_value(pool.id, member.id)}")
        if proxy is not None:
            words.append(proxy)
        if member.backup:
            words.append("backup")
        if not (member.admin_state_up and pool.admin_state_up):
            words.append("disabled")
        be["servers"].append({"name": member.id,
                              "address": _addr(member.address, member.protocol_port),
                              "words": " ".join(words), "tls": tls, "check_ssl": check_ssl})
    return be


# ------------------------------------------------------------------- global

def ssl_cache_entries(memory_kb: int, fraction: float) -> int:
    """``tune.ssl.cachesize`` such that two caches (the old worker's and the
    new one's, during a reload) fit in ``fraction`` of the amphora's memory.
    No floor: a tiny amphora gets a tiny cache (0 turns it off; TLS 1.3
    tickets still resume), never one that does not fit."""
    per_generation = int(memory_kb * 1024 * fraction) // 2
    return min(per_generation // _SSL_CACHE_ENTRY_BYTES, _SSL_CACHE_MAX_ENTRIES)


def _global(ctx: _Ctx, listeners: list[Listener]) -> dict[str, Any]:
    t, opts = ctx.target, ctx.options
    wanted = sum(li.connection_limit if li.connection_limit > 0 else opts.default_listener_maxconn
                 for li in listeners) or opts.default_listener_maxconn
    server_count = sum(len(p.members) for p in ctx.lb.pools)
    reserved_fds = 100 + len(listeners) * len(ctx.lb.vips) + server_count
    fd_cap = max((t.fd_limit - reserved_fds) // 2, 1)
    tls = any(li.protocol is ListenerProtocol.TERMINATED_HTTPS for li in listeners) or any(
        p.tls_enabled for p in ctx.lb.pools)
    per_conn_kb = _CONN_KB_TLS if tls else _CONN_KB_PLAIN
    # Two workers coexist during a reload, each up to maxconn.
    mem_cap = max(int(t.memory_kb * opts.memory_fraction) // 2 // per_conn_kb, 1)
    maxconn = max(min(wanted, fd_cap, mem_cap), 1)

    if t.reserve_cpu0 and t.cpu_count > 1:
        first_cpu, threads = 1, t.cpu_count - 1
    else:
        first_cpu, threads = 0, t.cpu_count
    threads = min(threads, _MAX_THREADS)
    last_cpu = first_cpu + threads - 1
    cpus = str(first_cpu) if threads == 1 else f"{first_cpu}-{last_cpu}"
    thread_set = "1" if threads == 1 else f"1-{threads}"

    cachesize = ssl_cache_entries(t.memory_kb, opts.ssl_cache_fraction)
    defaults_tls = _tls_settings(ctx, side="listener", path="policy", ciphers=None,
                                 ciphersuites=None, versions=None, alpn=None, http=False)
    server_tls = _tls_settings(ctx, side="pool", path="policy", ciphers=None,
                               ciphersuites=None, versions=None, alpn=None, http=False)
    ping = any(p.healthmonitor is not None and p.healthmonitor.type is MonitorType.PING
               for p in ctx.lb.pools)
    stats_socket = f"{opts.base_path.rstrip('/')}/{ctx.lb.id}.sock"
    if len(stats_socket.encode()) > _MAX_UNIX_PATH:
        raise ValidationError("options.base_path", f"stats socket path {stats_socket} is longer "
                              f"than HAProxy's {_MAX_UNIX_PATH}-byte UNIX socket limit")
    return {
        "maxconn": maxconn,
        "nbthread": threads,
        "cpu_map": f"auto:1/{thread_set} {cpus}",
        "cachesize": cachesize,
        "hard_stop_after": opts.hard_stop_after,
        "stats_socket": stats_socket,
        "state_file": f"{opts.base_path.rstrip('/')}/{ctx.lb.id}/servers-state",
        "bind_tls": defaults_tls,
        "server_tls": server_tls,
        "external_check": ping,
        "insecure_fork": ping and ctx.supports("insecure_fork_wanted"),
    }


# ------------------------------------------------------------------- render

@cache
def _environment() -> jinja2.Environment:
    # HAProxy config, not HTML: HTML escaping would corrupt values; q quotes them instead.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["q"] = quote
    return env


def render(lb: LoadBalancer | Mapping[str, Any], *, amphora_id: str, target: Target,
           options: RenderOptions | None = None, base_path: str | None = None,
           cert_dir: str | None = None) -> str:
    """Render the HAProxy configuration of ``lb`` for amphora ``amphora_id`` on ``target``.

    ``lb`` may be a LoadBalancer or an Octavia-style dict. ``base_path`` and
    ``cert_dir`` override the options' (the agent's ``base_path`` and
    ``base_cert_dir``). Raises ValidationError (CapabilityError for features
    the target lacks).
    """
    if not isinstance(lb, LoadBalancer):
        lb = LoadBalancer.from_dict(lb)
    options = options or RenderOptions()
    overrides = {k: v for k, v in (("base_path", base_path), ("cert_dir", cert_dir)) if v}
    if overrides:
        options = RenderOptions(**{**options.__dict__, **overrides})
    check_identifiers(amphora_id, options)
    ctx = _Ctx(lb, target, options)
    ctx.require("baseline", "target.haproxy_version")

    amphora_ids = [a.id for a in lb.amphorae]
    peers = None
    if lb.topology is Topology.ACTIVE_STANDBY:
        if amphora_id.lower() not in amphora_ids:
            raise ValidationError("amphora_id", "must be one of the LB's amphorae for "
                                  "ACTIVE_STANDBY (its peer entry is the local one)")
        peers = {
            "name": peers_section_name(lb.id),
            "peers": [{"name": peer_name(a.id),
                       "address": _addr(a.vrrp_ip, options.peer_port)}  # type: ignore[arg-type]
                      for a in lb.amphorae],
        }

    listeners = [li for li in lb.listeners if not li.is_lvs]
    glob = _global(ctx, listeners)
    frontends = []
    backends: dict[str, dict[str, Any]] = {}
    for li, listener in enumerate(lb.listeners):
        if listener.is_lvs:
            continue  # UDP/SCTP listeners are keepalived (LVS) configs
        fe = _frontend(ctx, li, listener, glob["maxconn"])
        frontends.append(fe)
        pool_ids = [listener.default_pool_id] if listener.default_pool_id else []
        pool_ids += [p.redirect_pool_id for p in listener.l7policies if p.redirect_pool_id]
        for pool_id in dict.fromkeys(pool_ids):
            pool = lb.pool(pool_id)
            name = backend_name(pool.id, listener.id)
            if name not in backends:
                backends[name] = _backend(ctx, listener, pool,
                                          peers["name"] if peers else None)
    glob["h2_glitches"] = {side: options.h2_glitches_threshold if side in ctx.h2_sides
                           else None for side in ("listener", "pool")}
    # Debian 13's HAProxy 3.0 reaches QUIC through its OpenSSL compatibility layer,
    # which HAProxy enables only when told to (limited-quic).
    glob["limited_quic"] = ctx.quic and not ctx.supports("quic_native_tls")
    glob["ocsp_update"] = options.ocsp_update and ctx.supports("ocsp_update") and any(
        li.protocol is ListenerProtocol.TERMINATED_HTTPS for li in listeners)
    if options.prometheus_bind:
        ctx.require("prometheus_exporter", "options.prometheus_bind")
    prometheus_socket = None
    if options.prometheus_socket:
        ctx.require("prometheus_exporter", "options.prometheus_socket")
        prometheus_socket = f"{options.base_path.rstrip('/')}/{lb.id}/prometheus.sock"
    text = _environment().get_template("haproxy.cfg.j2").render(
        prometheus_socket=prometheus_socket,
        lb=lb, amphora_id=amphora_id, peer_name=peer_name(amphora_id), opts=options,
        glob=glob, defaults=options.defaults, ms=_ms, peers=peers, frontends=frontends,
        backends=list(backends.values()),
    )
    return text
