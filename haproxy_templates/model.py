"""The typed load-balancer model, read from Octavia API v2 documents.

Everything is validated while it is read, so an object that exists is safe to
render: enums are enums, ports are in range, addresses are parsed, free text
that ends up in the config either passes a strict pattern or is quoted by the
renderer. Errors name the field as a path into the input document
(``listeners[0].protocol_port: must be 1..65535``).

Octavia's read-only bookkeeping keys (``project_id``, ``provisioning_status``,
...) are accepted and ignored so an API response can be fed as-is; any other
unknown key is an error, because a typo must not silently drop a setting.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from amphora_contract.api import PEM_FILENAME_RULE, is_pem_filename
from haproxy_templates.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ListenerProtocol(StrEnum):
    HTTP = "HTTP"
    HTTPS = "HTTPS"  # TLS passthrough
    TCP = "TCP"
    TERMINATED_HTTPS = "TERMINATED_HTTPS"
    UDP = "UDP"
    SCTP = "SCTP"
    PROMETHEUS = "PROMETHEUS"


class PoolProtocol(StrEnum):
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    TCP = "TCP"
    PROXY = "PROXY"
    PROXYV2 = "PROXYV2"
    UDP = "UDP"
    SCTP = "SCTP"


class Algorithm(StrEnum):
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_CONNECTIONS = "LEAST_CONNECTIONS"
    SOURCE_IP = "SOURCE_IP"
    SOURCE_IP_PORT = "SOURCE_IP_PORT"  # LVS (UDP/SCTP) only


class PersistenceType(StrEnum):
    SOURCE_IP = "SOURCE_IP"
    HTTP_COOKIE = "HTTP_COOKIE"
    APP_COOKIE = "APP_COOKIE"


class MonitorType(StrEnum):
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    TCP = "TCP"
    PING = "PING"
    TLS_HELLO = "TLS-HELLO"
    UDP_CONNECT = "UDP-CONNECT"
    SCTP = "SCTP"


class L7Action(StrEnum):
    REJECT = "REJECT"
    REDIRECT_TO_URL = "REDIRECT_TO_URL"
    REDIRECT_PREFIX = "REDIRECT_PREFIX"
    REDIRECT_TO_POOL = "REDIRECT_TO_POOL"


class L7RuleType(StrEnum):
    HOST_NAME = "HOST_NAME"
    PATH = "PATH"
    FILE_TYPE = "FILE_TYPE"
    HEADER = "HEADER"
    COOKIE = "COOKIE"
    SSL_CONN_HAS_CERT = "SSL_CONN_HAS_CERT"
    SSL_VERIFY_RESULT = "SSL_VERIFY_RESULT"
    SSL_DN_FIELD = "SSL_DN_FIELD"


class CompareType(StrEnum):
    REGEX = "REGEX"
    STARTS_WITH = "STARTS_WITH"
    ENDS_WITH = "ENDS_WITH"
    CONTAINS = "CONTAINS"
    EQUAL_TO = "EQUAL_TO"


class ClientAuth(StrEnum):
    NONE = "NONE"
    OPTIONAL = "OPTIONAL"
    MANDATORY = "MANDATORY"


class Topology(StrEnum):
    SINGLE = "SINGLE"
    ACTIVE_STANDBY = "ACTIVE_STANDBY"


class AmphoraRole(StrEnum):
    MASTER = "MASTER"
    BACKUP = "BACKUP"
    STANDALONE = "STANDALONE"


# Listener protocol -> pool protocols it may forward to (Octavia's matrix).
COMPATIBLE_POOLS: dict[ListenerProtocol, frozenset[PoolProtocol]] = {
    ListenerProtocol.HTTP: frozenset({PoolProtocol.HTTP, PoolProtocol.PROXY,
                                      PoolProtocol.PROXYV2}),
    ListenerProtocol.TERMINATED_HTTPS: frozenset({PoolProtocol.HTTP, PoolProtocol.PROXY,
                                                  PoolProtocol.PROXYV2}),
    ListenerProtocol.HTTPS: frozenset({PoolProtocol.HTTPS, PoolProtocol.TCP,
                                       PoolProtocol.PROXY, PoolProtocol.PROXYV2}),
    ListenerProtocol.TCP: frozenset({PoolProtocol.TCP, PoolProtocol.HTTP, PoolProtocol.HTTPS,
                                     PoolProtocol.PROXY, PoolProtocol.PROXYV2}),
    ListenerProtocol.UDP: frozenset({PoolProtocol.UDP}),
    ListenerProtocol.SCTP: frozenset({PoolProtocol.SCTP}),
    ListenerProtocol.PROMETHEUS: frozenset(),
}
HTTP_LISTENERS = frozenset({ListenerProtocol.HTTP, ListenerProtocol.TERMINATED_HTTPS})
LVS_LISTENERS = frozenset({ListenerProtocol.UDP, ListenerProtocol.SCTP})

# Headers Octavia lets a listener insert; values are "true"/"false" (or a bool).
FORWARD_HEADERS = ("X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto")
CLIENT_CERT_HEADERS = ("X-SSL-Client-Verify", "X-SSL-Client-Has-Cert", "X-SSL-Client-DN",
                       "X-SSL-Client-CN", "X-SSL-Issuer", "X-SSL-Client-SHA1",
                       "X-SSL-Client-Not-Before", "X-SSL-Client-Not-After")

# Octavia's read-only / bookkeeping keys, accepted and ignored.
_COMMON_IGNORED = frozenset({
    "project_id", "tenant_id", "provisioning_status", "operating_status", "created_at",
    "updated_at", "tags", "description",
})
_IGNORED: dict[str, frozenset[str]] = {
    "loadbalancer": _COMMON_IGNORED | {"provider", "flavor_id", "flavor", "availability_zone",
                                       "vip_port_id", "vip_subnet_id", "vip_network_id",
                                       "vip_qos_policy_id", "vip_vnic_type", "vip_sg_ids",
                                       "admin_state_up"},
    "amphora": _COMMON_IGNORED | {"status", "lb_network_ip", "ha_ip", "vrrp_port_id",
                                  "ha_port_id", "vrrp_interface", "vrrp_id", "compute_id",
                                  "image_id", "compute_flavor", "cert_expiration",
                                  "cert_busy", "loadbalancer_id"},
    "listener": _COMMON_IGNORED | {"loadbalancers", "loadbalancer_id"},
    "pool": _COMMON_IGNORED | {"loadbalancers", "listeners", "loadbalancer_id", "listener_id"},
    "member": _COMMON_IGNORED | {"subnet_id", "pool_id", "vnic_type"},
    "healthmonitor": _COMMON_IGNORED | {"pools", "pool_id"},
    "l7policy": _COMMON_IGNORED | {"listener_id"},
    "l7rule": _COMMON_IGNORED | {"l7policy_id"},
    "session_persistence": frozenset({"persistence_granularity"}),
    "vip": frozenset({"subnet_id"}),
}

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{12}$")
# Header/cookie names end up inside sample-fetch arguments (``req.hdr(NAME)``),
# which have their own parser; only characters that need no quoting there.
_NAME_ARG_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_URL_PATH_RE = re.compile(r"^/[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*$")
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_EXPECTED_CODES_RE = re.compile(r"^([1-5][0-9]{2})(([,-][1-5][0-9]{2})*)$")
_URL_RE = re.compile(r"^https?://[^\s\x00-\x1f\x7f]+$")
_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "PATCH",
                 "CONNECT")
_PROXY_MONITORS = frozenset({MonitorType.HTTP, MonitorType.HTTPS, MonitorType.TCP,
                             MonitorType.PING, MonitorType.TLS_HELLO})
_LVS_MONITORS = frozenset({MonitorType.UDP_CONNECT, MonitorType.SCTP, MonitorType.HTTP,
                           MonitorType.TCP, MonitorType.PING})
_MAX_TIMEOUT_MS = 24 * 24 * 3600 * 1000  # HAProxy timers are 32-bit milliseconds
_MAX_TEXT = 255

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")


def cert_filename(ref: str) -> str:
    """The PEM file a container reference names in the LB's cert directory.

    A plain filename the agent accepts (:func:`amphora_contract.api.is_pem_filename`)
    is used as is; a URL-style
    reference (Barbican, Castellan) maps to the SHA-1 of the reference, which
    is also how the controller must name the file when it uploads it.
    """
    if is_pem_filename(ref):
        return ref
    if "://" in ref and not any(ch.isspace() or ord(ch) < 32 for ch in ref):
        return hashlib.sha1(ref.encode(), usedforsecurity=False).hexdigest() + ".pem"
    raise ValueError(f"must be a PEM filename ({PEM_FILENAME_RULE}) or a container URL")


class _Reader:
    """Reads one JSON object, tracking which keys were consumed."""

    def __init__(self, data: Any, path: str, kind: str) -> None:
        if not isinstance(data, Mapping):
            raise ValidationError(path, f"must be an object, not {type(data).__name__}")
        self.data = data
        self.path = path
        self.kind = kind
        self.used: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> ValidationError:
        return ValidationError(self.field(key), message)

    def raw(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        value = self.data.get(key, default)
        return default if value is None else value

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def required(self, key: str) -> Any:
        self.used.add(key)
        if self.data.get(key) is None:
            raise self.error(key, "is required")
        return self.data[key]

    def text(self, key: str, default: str | None = None, *, required: bool = False,
             pattern: re.Pattern[str] | None = None, max_len: int = _MAX_TEXT,
             what: str = "") -> str | None:
        value = self.required(key) if required else self.raw(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, "must be a string")
        if len(value) > max_len:
            raise self.error(key, f"must be at most {max_len} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, f"must be {what or 'valid'}")
        if pattern is None and _has_control(value):
            raise self.error(key, "must not contain control characters")
        return value

    def uuid(self, key: str, *, required: bool = True) -> str | None:
        value = self.text(key, required=required, pattern=_UUID_RE, what="a UUID")
        return value.lower() if value else value

    def integer(self, key: str, default: int | None = None, *, lo: int, hi: int,
                required: bool = False) -> int | None:
        value = self.required(key) if required else self.raw(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "must be an integer")
        if not lo <= value <= hi:
            raise self.error(key, f"must be {lo}..{hi}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def enum(self, key: str, enum: type[E], default: E | None = None) -> E:
        value = self.raw(key, default) if default is not None else self.required(key)
        try:
            return enum(value)
        except ValueError:
            choices = ", ".join(m.value for m in enum)
            raise self.error(key, f"must be one of {choices}") from None

    def items(self, key: str, parse: Callable[[Any, str], T]) -> tuple[T, ...]:
        value = self.raw(key, [])
        if not isinstance(value, list):
            raise self.error(key, "must be a list")
        return tuple(parse(item, f"{self.field(key)}[{i}]") for i, item in enumerate(value))

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        for i, item in enumerate(value):
            if _has_control(item) or len(item) > _MAX_TEXT:
                raise ValidationError(f"{self.field(key)}[{i}]", "is not a valid value")
        return tuple(value)

    def cert(self, key: str) -> str | None:
        ref = self.text(key, max_len=1024)
        if ref is None:
            return None
        try:
            return cert_filename(ref)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def address(self, key: str, *, required: bool = True) -> IPAddress | None:
        value = self.required(key) if required else self.raw(key)
        if value is None:
            return None
        return _parse_ip(value, self.field(key))

    def finish(self) -> None:
        ignored = _IGNORED.get(self.kind, frozenset())
        unknown = sorted(set(self.data) - self.used - ignored)
        if unknown:
            raise self.error(unknown[0], "unknown field")


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029" for ch in text)


def _parse_ip(value: Any, field_path: str) -> IPAddress:
    if not isinstance(value, str):
        raise ValidationError(field_path, "must be an IP address string")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError(field_path, "must be an IPv4 or IPv6 address") from None


def _unique(items: Sequence[Any], attr: str, path: str) -> None:
    seen: set[Any] = set()
    for i, item in enumerate(items):
        key = getattr(item, attr)
        if key in seen:
            raise ValidationError(f"{path}[{i}].{attr}", f"duplicate {attr} {key}")
        seen.add(key)


@dataclass(frozen=True)
class Member:
    id: str
    address: IPAddress
    protocol_port: int
    weight: int = 1
    backup: bool = False
    admin_state_up: bool = True
    monitor_address: IPAddress | None = None
    monitor_port: int | None = None
    name: str | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str = "member") -> Member:
        r = _Reader(d, path, "member")
        member = cls(
            id=r.uuid("id"),  # type: ignore[arg-type]
            address=r.address("address"),  # type: ignore[arg-type]
            protocol_port=r.integer("protocol_port", lo=1, hi=65535, required=True),  # type: ignore[arg-type]
            weight=r.integer("weight", 1, lo=0, hi=256),  # type: ignore[arg-type]
            backup=r.boolean("backup", False),
            admin_state_up=r.boolean("admin_state_up", True),
            monitor_address=r.address("monitor_address", required=False),
            monitor_port=r.integer("monitor_port", lo=1, hi=65535),
            name=r.text("name"),
        )
        r.finish()
        return member


@dataclass(frozen=True)
class HealthMonitor:
    id: str
    type: MonitorType
    delay: int
    timeout: int
    max_retries: int
    max_retries_down: int = 3
    http_method: str = "GET"
    url_path: str = "/"
    http_version: str = "1.0"
    domain_name: str | None = None
    expected_codes: str = "200"
    admin_state_up: bool = True
    name: str | None = None

    @property
    def expected_codes_regex(self) -> str | None:
        """A regex for lists/ranges (``200,202`` / ``200-204``), None for one code."""
        if re.fullmatch(r"\d{3}", self.expected_codes):
            return None
        codes: list[str] = []
        for part in self.expected_codes.split(","):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-"))
                codes.extend(str(c) for c in range(lo, hi + 1))
            else:
                codes.append(part)
        return "^(" + "|".join(dict.fromkeys(codes)) + ")$"

    @classmethod
    def from_dict(cls, d: Any, path: str = "healthmonitor") -> HealthMonitor:
        r = _Reader(d, path, "healthmonitor")
        mtype = r.enum("type", MonitorType)
        delay = r.integer("delay", lo=1, hi=86400, required=True)
        timeout = r.integer("timeout", lo=1, hi=86400, required=True)
        assert delay is not None and timeout is not None
        is_http = mtype in (MonitorType.HTTP, MonitorType.HTTPS)
        method = r.text("http_method", "GET")
        if method not in _HTTP_METHODS:
            raise r.error("http_method", f"must be one of {', '.join(_HTTP_METHODS)}")
        version = r.raw("http_version", 1.0)
        if version not in (1.0, 1.1, "1.0", "1.1"):
            raise r.error("http_version", "must be 1.0 or 1.1")
        version_s = "1.1" if version in (1.1, "1.1") else "1.0"
        domain = r.text("domain_name", pattern=_HOSTNAME_RE, what="a host name")
        if domain is not None and version_s != "1.1":
            raise r.error("domain_name", "needs http_version 1.1")
        codes = r.text("expected_codes", "200", pattern=_EXPECTED_CODES_RE,
                       what="an HTTP status code, a list (200,202) or a range (200-204)")
        assert codes is not None
        for part in codes.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                if int(lo) > int(hi):
                    raise r.error("expected_codes", f"range {part} is reversed")
        url_path = r.text("url_path", "/", pattern=_URL_PATH_RE,
                          what="an absolute URL path without spaces", max_len=2048)
        if not is_http:
            for key in ("url_path", "domain_name", "expected_codes"):
                if r.has(key):
                    raise r.error(key, f"only applies to HTTP and HTTPS monitors, not {mtype}")
        monitor = cls(
            id=r.uuid("id"),  # type: ignore[arg-type]
            type=mtype,
            delay=delay,
            timeout=timeout,
            max_retries=r.integer("max_retries", lo=1, hi=10, required=True),  # type: ignore[arg-type]
            max_retries_down=r.integer("max_retries_down", 3, lo=1, hi=10),  # type: ignore[arg-type]
            http_method=method,
            url_path=url_path,  # type: ignore[arg-type]
            http_version=version_s,
            domain_name=domain,
            expected_codes=codes,
            admin_state_up=r.boolean("admin_state_up", True),
            name=r.text("name"),
        )
        r.finish()
        return monitor


@dataclass(frozen=True)
class SessionPersistence:
    type: PersistenceType
    cookie_name: str | None = None
    persistence_timeout: int = 1800  # seconds an idle stick-table entry lives

    @classmethod
    def from_dict(cls, d: Any, path: str = "session_persistence") -> SessionPersistence:
        r = _Reader(d, path, "session_persistence")
        ptype = r.enum("type", PersistenceType)
        cookie = r.text("cookie_name", pattern=_NAME_ARG_RE,
                        what="a cookie name of letters, digits, '_', '.' and '-'")
        if ptype is PersistenceType.APP_COOKIE and cookie is None:
            raise r.error("cookie_name", "is required for APP_COOKIE")
        if ptype is not PersistenceType.APP_COOKIE and cookie is not None:
            raise r.error("cookie_name", f"only applies to APP_COOKIE, not {ptype}")
        sp = cls(ptype, cookie,
                 r.integer("persistence_timeout", 1800, lo=1, hi=30 * 86400))  # type: ignore[arg-type]
        r.finish()
        return sp


@dataclass(frozen=True)
class PoolTLS:
    """Backend re-encryption: client cert, CA/CRL to verify members, protocol settings."""

    client_cert: str | None = None
    ca: str | None = None
    crl: str | None = None
    ciphers: str | None = None
    ciphersuites: str | None = None
    versions: tuple[str, ...] | None = None
    alpn: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Pool:
    id: str
    protocol: PoolProtocol
    lb_algorithm: Algorithm
    members: tuple[Member, ...] = ()
    session_persistence: SessionPersistence | None = None
    healthmonitor: HealthMonitor | None = None
    admin_state_up: bool = True
    tls_enabled: bool = False
    tls: PoolTLS = field(default_factory=PoolTLS)
    name: str | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str = "pool") -> Pool:
        r = _Reader(d, path, "pool")
        protocol = r.enum("protocol", PoolProtocol)
        algorithm = r.enum("lb_algorithm", Algorithm)
        lvs = protocol in (PoolProtocol.UDP, PoolProtocol.SCTP)
        if algorithm is Algorithm.SOURCE_IP_PORT and not lvs:
            raise r.error("lb_algorithm", "SOURCE_IP_PORT is only valid for UDP and SCTP pools")
        sp = None
        if r.has("session_persistence"):
            sp = SessionPersistence.from_dict(r.raw("session_persistence"),
                                              r.field("session_persistence"))
        hm = None
        if r.has("healthmonitor"):
            hm = HealthMonitor.from_dict(r.raw("healthmonitor"), r.field("healthmonitor"))
            allowed = _LVS_MONITORS if lvs else _PROXY_MONITORS
            if hm.type not in allowed:
                raise ValidationError(r.field("healthmonitor.type"),
                                      f"{hm.type} monitors do not apply to {protocol} pools")
        members = r.items("members", Member.from_dict)
        _unique(members, "id", r.field("members"))
        tls_enabled = r.boolean("tls_enabled", False)
        tls = PoolTLS(
            client_cert=r.cert("tls_container_ref"),
            ca=r.cert("ca_tls_container_ref"),
            crl=r.cert("crl_container_ref"),
            ciphers=r.text("tls_ciphers", max_len=2048),
            ciphersuites=r.text("tls_ciphersuites", max_len=1024),
            versions=r.strings("tls_versions"),
            alpn=r.strings("alpn_protocols"),
        )
        if tls.crl and not tls.ca:
            raise r.error("crl_container_ref", "needs ca_tls_container_ref")
        if not tls_enabled:
            for key, value in (("tls_container_ref", tls.client_cert),
                               ("ca_tls_container_ref", tls.ca),
                               ("crl_container_ref", tls.crl)):
                if value is not None:
                    raise r.error(key, "needs tls_enabled")
        if not tls_enabled:
            # Octavia reports default ciphers/versions/ALPN on every pool; only meaningful
            # with tls_enabled.
            tls = PoolTLS()
        if tls_enabled and protocol not in (PoolProtocol.HTTP, PoolProtocol.TCP,
                                            PoolProtocol.HTTPS):
            raise r.error("tls_enabled", f"not supported for {protocol} pools")
        pool = cls(
            id=r.uuid("id"),  # type: ignore[arg-type]
            protocol=protocol,
            lb_algorithm=algorithm,
            members=members,
            session_persistence=sp,
            healthmonitor=hm,
            admin_state_up=r.boolean("admin_state_up", True),
            tls_enabled=tls_enabled,
            tls=tls,
            name=r.text("name"),
        )
        r.finish()
        return pool


@dataclass(frozen=True)
class L7Rule:
    id: str
    type: L7RuleType
    compare_type: CompareType
    value: str
    key: str | None = None
    invert: bool = False
    admin_state_up: bool = True

    @classmethod
    def from_dict(cls, d: Any, path: str = "l7rule") -> L7Rule:
        r = _Reader(d, path, "l7rule")
        rtype = r.enum("type", L7RuleType)
        compare = r.enum("compare_type", CompareType)
        value = r.text("value", required=True, max_len=1024)
        assert value is not None
        if value == "":
            raise r.error("value", "must not be empty")
        key: str | None = None
        if rtype in (L7RuleType.HEADER, L7RuleType.COOKIE):
            key = r.text("key", required=True, pattern=_NAME_ARG_RE,
                         what="a header or cookie name of letters, digits, '_', '.' and '-'")
        elif rtype is L7RuleType.SSL_DN_FIELD:
            key = r.text("key", required=True, pattern=re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$"),
                         what="a DN attribute name such as CN or OU")
        elif r.has("key"):
            raise r.error("key", f"does not apply to {rtype} rules")
        if rtype is L7RuleType.SSL_CONN_HAS_CERT:
            if value.lower() != "true" or compare is not CompareType.EQUAL_TO:
                raise r.error("value", "SSL_CONN_HAS_CERT takes EQUAL_TO 'True'")
        if rtype is L7RuleType.SSL_VERIFY_RESULT:
            if not value.isdigit() or compare is not CompareType.EQUAL_TO:
                raise r.error("value", "SSL_VERIFY_RESULT takes EQUAL_TO an integer")
        if rtype is L7RuleType.FILE_TYPE and compare not in (CompareType.EQUAL_TO,
                                                              CompareType.REGEX):
            raise r.error("compare_type", "FILE_TYPE takes EQUAL_TO or REGEX")
        if compare is CompareType.REGEX:
            try:
                re.compile(value)
            except re.error as exc:
                raise r.error("value", f"invalid regular expression: {exc}") from None
        rule = cls(
            id=r.uuid("id"),  # type: ignore[arg-type]
            type=rtype, compare_type=compare, value=value, key=key,
            invert=r.boolean("invert", False),
            admin_state_up=r.boolean("admin_state_up", True),
        )
        r.finish()
        return rule


_REDIRECT_CODES = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class L7Policy:
    id: str
    action: L7Action
    position: int
    rules: tuple[L7Rule, ...] = ()
    redirect_pool_id: str | None = None
    redirect_url: str | None = None
    redirect_prefix: str | None = None
    redirect_http_code: int | None = None
    admin_state_up: bool = True
    name: str | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str = "l7policy") -> L7Policy:
        r = _Reader(d, path, "l7policy")
        action = r.enum("action", L7Action)
        url = r.text("redirect_url", pattern=_URL_RE, what="an http(s) URL", max_len=2048)
        prefix = r.text("redirect_prefix", pattern=_URL_RE, what="an http(s) URL", max_len=2048)
        pool_id = r.uuid("redirect_pool_id", required=False)
        needed = {L7Action.REDIRECT_TO_URL: ("redirect_url", url),
                  L7Action.REDIRECT_PREFIX: ("redirect_prefix", prefix),
                  L7Action.REDIRECT_TO_POOL: ("redirect_pool_id", pool_id)}
        for act, (key, value) in needed.items():
            if act is action and value is None:
                raise r.error(key, f"is required for {action}")
            if act is not action and value is not None:
                raise r.error(key, f"does not apply to {action}")
        code = r.integer("redirect_http_code", lo=300, hi=308)
        if code is not None:
            if action not in (L7Action.REDIRECT_TO_URL, L7Action.REDIRECT_PREFIX):
                raise r.error("redirect_http_code", f"does not apply to {action}")
            if code not in _REDIRECT_CODES:
                raise r.error("redirect_http_code",
                              f"must be one of {', '.join(map(str, _REDIRECT_CODES))}")
        elif action in (L7Action.REDIRECT_TO_URL, L7Action.REDIRECT_PREFIX):
            code = 302
        rules = r.items("rules", L7Rule.from_dict)
        _unique(rules, "id", r.field("rules"))
        policy = cls(
            id=r.uuid("id"),  # type: ignore[arg-type]
            action=action,
            position=r.integer("position", 1, lo=1, hi=2**31 - 1),  # type: ignore[arg-type]
            rules=rules, redirect_pool_id=pool_id, redirect_url=url, redirect_prefix=prefix,
            redirect_http_code=code,
            admin_state_up=r.boolean("admin_state_up", True),
            name=r.text("name"),
        )
        r.finish()
        return policy


@dataclass(frozen=True)
class ListenerTLS:
    """TLS termination: default cert, SNI certs, client auth, protocol settings."""

    default_cert: str | None = None
    sni_certs: tuple[str, ...] = ()
    client_auth: ClientAuth = ClientAuth.NONE
    client_ca: str | None = None
    client_crl: str | None = None
    ciphers: str | None = None
    ciphersuites: str | None = None
    versions: tuple[str, ...] | None = None
    alpn: tuple[str, ...] | None = None
    hsts_max_age: int | None = None
    hsts_include_subdomains: bool = False
    hsts_preload: bool = False


@dataclass(frozen=True)
class Timeouts:
    """Per-listener timeouts in milliseconds (Octavia's defaults)."""

    client_data: int = 50000
    member_connect: int = 5000
    member_data: int = 50000
    tcp_inspect: int = 0


@dataclass(frozen=True)
class Listener:
    id: str
    protocol: ListenerProtocol
    protocol_port: int
    connection_limit: int = -1
    admin_state_up: bool = True
    default_pool_id: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    insert_headers: frozenset[str] = frozenset()
    l7policies: tuple[L7Policy, ...] = ()
    tls: ListenerTLS = field(default_factory=ListenerTLS)
    allowed_cidrs: tuple[IPNetwork, ...] = ()
    name: str | None = None

    @property
    def is_http(self) -> bool:
        return self.protocol in HTTP_LISTENERS

    @property
    def is_lvs(self) -> bool:
        return self.protocol in LVS_LISTENERS

    @classmethod
    def from_dict(cls, d: Any, path: str = "listener") -> Listener:
        r = _Reader(d, path, "listener")
        protocol = r.enum("protocol", ListenerProtocol)
        limit = r.integer("connection_limit", -1, lo=-1, hi=1_000_000)
        if limit == 0:
            raise r.error("connection_limit", "must be -1 (unlimited) or 1..1000000")
        timeouts = Timeouts(
            client_data=r.integer("timeout_client_data", 50000, lo=0, hi=_MAX_TIMEOUT_MS),  # type: ignore[arg-type]
            member_connect=r.integer("timeout_member_connect", 5000, lo=0, hi=_MAX_TIMEOUT_MS),  # type: ignore[arg-type]
            member_data=r.integer("timeout_member_data", 50000, lo=0, hi=_MAX_TIMEOUT_MS),  # type: ignore[arg-type]
            tcp_inspect=r.integer("timeout_tcp_inspect", 0, lo=0, hi=_MAX_TIMEOUT_MS),  # type: ignore[arg-type]
        )
        headers = _insert_headers(r, protocol)
        policies = r.items("l7policies", L7Policy.from_dict)
        _unique(policies, "id", r.field("l7policies"))
        if policies and protocol not in HTTP_LISTENERS:
            raise r.error("l7policies", f"L7 policies need an HTTP or TERMINATED_HTTPS "
                          f"listener, not {protocol}")
        tls = _listener_tls(r, protocol)
        if protocol is not ListenerProtocol.TERMINATED_HTTPS:
            for i, policy in enumerate(policies):
                for j, rule in enumerate(policy.rules):
                    if rule.type.startswith("SSL_"):
                        raise ValidationError(
                            f"{r.field('l7policies')}[{i}].rules[{j}].type",
                            f"{rule.type} rules need a TERMINATED_HTTPS listener")
        cidrs = []
        for i, text in enumerate(r.strings("allowed_cidrs") or ()):
            try:
                cidrs.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValidationError(f"{r.field('allowed_cidrs')}[{i}]",
                                      "must be a CIDR such as 192.0.2.0/24") from None
        listener = cls(
            id=r.uuid("id"),  # type: ignore[arg-type]
            protocol=protocol,
            protocol_port=r.integer("protocol_port", lo=1, hi=65535, required=True),  # type: ignore[arg-type]
            connection_limit=limit,  # type: ignore[arg-type]
            admin_state_up=r.boolean("admin_state_up", True),
            default_pool_id=r.uuid("default_pool_id", required=False),
            timeouts=timeouts,
            insert_headers=headers,
            l7policies=tuple(sorted(policies, key=lambda p: p.position)),
            tls=tls,
            allowed_cidrs=tuple(dict.fromkeys(cidrs)),
            name=r.text("name"),
        )
        r.finish()
        return listener


def _insert_headers(r: _Reader, protocol: ListenerProtocol) -> frozenset[str]:
    raw = r.raw("insert_headers", {})
    if not isinstance(raw, Mapping):
        raise r.error("insert_headers", "must be an object")
    allowed: tuple[str, ...] = ()
    if protocol in HTTP_LISTENERS:
        allowed = FORWARD_HEADERS
    if protocol is ListenerProtocol.TERMINATED_HTTPS:
        allowed = FORWARD_HEADERS + CLIENT_CERT_HEADERS
    enabled = set()
    for key, value in raw.items():
        path = f"{r.field('insert_headers')}.{key}"
        if key not in allowed:
            raise ValidationError(path, f"cannot be inserted by a {protocol} listener")
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ValidationError(path, "must be true or false")
        if value:
            enabled.add(key)
    return frozenset(enabled)


def _listener_tls(r: _Reader, protocol: ListenerProtocol) -> ListenerTLS:
    terminated = protocol is ListenerProtocol.TERMINATED_HTTPS
    default_cert = r.cert("default_tls_container_ref")
    sni_refs = r.strings("sni_container_refs") or ()
    sni = []
    for i, ref in enumerate(sni_refs):
        try:
            sni.append(cert_filename(ref))
        except ValueError as exc:
            raise ValidationError(f"{r.field('sni_container_refs')}[{i}]", str(exc)) from None
    auth = r.enum("client_authentication", ClientAuth, ClientAuth.NONE)
    tls = ListenerTLS(
        default_cert=default_cert,
        sni_certs=tuple(dict.fromkeys(s for s in sni if s != default_cert)),
        client_auth=auth,
        client_ca=r.cert("client_ca_tls_container_ref"),
        client_crl=r.cert("client_crl_container_ref"),
        ciphers=r.text("tls_ciphers", max_len=2048),
        ciphersuites=r.text("tls_ciphersuites", max_len=1024),
        versions=r.strings("tls_versions"),
        alpn=r.strings("alpn_protocols"),
        hsts_max_age=r.integer("hsts_max_age", lo=0, hi=2**31 - 1),
        hsts_include_subdomains=r.boolean("hsts_include_subdomains", False),
        hsts_preload=r.boolean("hsts_preload", False),
    )
    if terminated:
        if tls.default_cert is None:
            raise r.error("default_tls_container_ref", "is required for TERMINATED_HTTPS")
        if auth is not ClientAuth.NONE and tls.client_ca is None:
            raise r.error("client_ca_tls_container_ref",
                          f"is required for client_authentication {auth}")
        if tls.client_crl is not None and tls.client_ca is None:
            raise r.error("client_crl_container_ref", "needs client_ca_tls_container_ref")
        if (tls.hsts_include_subdomains or tls.hsts_preload) and tls.hsts_max_age is None:
            raise r.error("hsts_max_age", "is required when other hsts_* options are set")
        return tls
    # Octavia's API fills tls_ciphers/tls_versions/alpn_protocols with defaults on every
    # listener and sends [] for SNI refs; those are ignored. Certificates are not.
    for key in ("default_tls_container_ref", "sni_container_refs", "client_ca_tls_container_ref",
                "client_crl_container_ref", "tls_ciphersuites", "hsts_max_age"):
        if r.data.get(key) not in (None, [], ""):
            raise r.error(key, f"only applies to TERMINATED_HTTPS listeners, not {protocol}")
    if auth is not ClientAuth.NONE:
        raise r.error("client_authentication", "only applies to TERMINATED_HTTPS listeners")
    if tls.hsts_include_subdomains or tls.hsts_preload:
        raise r.error("hsts_include_subdomains", "only applies to TERMINATED_HTTPS listeners")
    # Octavia sends empty TLS lists on plain listeners; keep them out of the model.
    return ListenerTLS()


@dataclass(frozen=True)
class Amphora:
    id: str
    role: AmphoraRole = AmphoraRole.STANDALONE
    vrrp_ip: IPAddress | None = None
    vrrp_priority: int | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str = "amphora") -> Amphora:
        r = _Reader(d, path, "amphora")
        amp = cls(
            id=r.uuid("id"),  # type: ignore[arg-type]
            role=r.enum("role", AmphoraRole, AmphoraRole.STANDALONE),
            vrrp_ip=r.address("vrrp_ip", required=False),
            vrrp_priority=r.integer("vrrp_priority", lo=1, hi=254),
        )
        r.finish()
        return amp


@dataclass(frozen=True)
class LoadBalancer:
    id: str
    vip_address: IPAddress
    additional_vips: tuple[IPAddress, ...] = ()
    topology: Topology = Topology.SINGLE
    amphorae: tuple[Amphora, ...] = ()
    listeners: tuple[Listener, ...] = ()
    pools: tuple[Pool, ...] = ()
    name: str | None = None

    @property
    def vips(self) -> tuple[IPAddress, ...]:
        return (self.vip_address, *self.additional_vips)

    def pool(self, pool_id: str) -> Pool:
        for pool in self.pools:
            if pool.id == pool_id:
                return pool
        raise KeyError(pool_id)

    @classmethod
    def from_dict(cls, d: Any) -> LoadBalancer:
        """Build and cross-check an LB from an Octavia API v2 style document."""
        r = _Reader(d, "", "loadbalancer")
        vip = r.address("vip_address")
        assert vip is not None
        extra: list[IPAddress] = []
        raw_vips = r.raw("additional_vips", [])
        if not isinstance(raw_vips, list):
            raise r.error("additional_vips", "must be a list")
        for i, item in enumerate(raw_vips):
            vr = _Reader(item, f"additional_vips[{i}]", "vip")
            address = vr.address("ip_address")
            vr.finish()
            if address in extra or address == vip:
                raise vr.error("ip_address", f"duplicate VIP {address}")
            extra.append(address)  # type: ignore[arg-type]
        topology = r.enum("topology", Topology, Topology.SINGLE)
        amphorae = r.items("amphorae", Amphora.from_dict)
        _unique(amphorae, "id", "amphorae")
        if topology is Topology.ACTIVE_STANDBY:
            for i, amp in enumerate(amphorae):
                if amp.vrrp_ip is None:
                    raise ValidationError(f"amphorae[{i}].vrrp_ip", "is required for "
                                          "ACTIVE_STANDBY (HAProxy peers use it)")
        pools = r.items("pools", Pool.from_dict)
        _unique(pools, "id", "pools")
        listeners = r.items("listeners", Listener.from_dict)
        _unique(listeners, "id", "listeners")
        lb = cls(
            id=r.uuid("id"),  # type: ignore[arg-type]
            vip_address=vip,
            additional_vips=tuple(extra),
            topology=topology,
            amphorae=amphorae,
            listeners=listeners,
            pools=pools,
            name=r.text("name"),
        )
        r.finish()
        lb._cross_check()
        return lb

    def _cross_check(self) -> None:
        pools = {p.id: (i, p) for i, p in enumerate(self.pools)}
        ports: dict[tuple[str, int], int] = {}
        default_owner: dict[str, int] = {}
        for li, listener in enumerate(self.listeners):
            path = f"listeners[{li}]"
            family = "udp" if listener.protocol is ListenerProtocol.UDP else (
                "sctp" if listener.protocol is ListenerProtocol.SCTP else "tcp")
            port_key = (family, listener.protocol_port)
            if port_key in ports:
                raise ValidationError(f"{path}.protocol_port", f"port {listener.protocol_port} "
                                      f"is already used by listeners[{ports[port_key]}]")
            ports[port_key] = li
            uses: list[tuple[str, str]] = []
            if listener.default_pool_id is not None:
                uses.append((f"{path}.default_pool_id", listener.default_pool_id))
                if listener.default_pool_id in default_owner:
                    raise ValidationError(
                        f"{path}.default_pool_id", "pool is already the default pool of "
                        f"listeners[{default_owner[listener.default_pool_id]}]")
                default_owner[listener.default_pool_id] = li
            for pi, policy in enumerate(listener.l7policies):
                if policy.redirect_pool_id is not None:
                    uses.append((f"{path}.l7policies[{pi}].redirect_pool_id",
                                 policy.redirect_pool_id))
            if listener.protocol is ListenerProtocol.PROMETHEUS and uses:
                raise ValidationError(uses[0][0], "PROMETHEUS listeners have no pools")
            for field_path, pool_id in uses:
                if pool_id not in pools:
                    raise ValidationError(field_path, f"no pool with id {pool_id}")
                pool_index, pool = pools[pool_id]
                if pool.protocol not in COMPATIBLE_POOLS[listener.protocol]:
                    raise ValidationError(field_path, f"a {listener.protocol} listener cannot "
                                          f"use a {pool.protocol} pool")
                sp = pool.session_persistence
                if (sp is not None and sp.type is not PersistenceType.SOURCE_IP
                        and not listener.is_http):
                    raise ValidationError(
                        f"pools[{pool_index}].session_persistence.type",
                        f"{sp.type} needs HTTP listeners, but {field_path} is {listener.protocol}")
