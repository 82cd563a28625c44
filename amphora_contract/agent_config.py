"""Agent configuration: Octavia's ``amphora-agent.conf`` plus our ``[amphora]`` section.

One schema, read by the agent (:func:`parse`, :func:`load`) and written by a
controller (:class:`AgentSettings`), so a key the controller writes is a key
the agent reads.

The file Octavia's controller renders must load unchanged, so keys in
Octavia's sections that we do not use are accepted (and ignored); our own
section is strict. Every problem is reported as one line naming the key.
"""

from __future__ import annotations

import configparser
import io
import ipaddress
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CONFIG_FILE = "/etc/octavia/amphora-agent.conf"


class ConfigError(ValueError):
    """A bad agent config; the message is one line naming the key."""


@dataclass(frozen=True)
class HeartbeatTarget:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class AgentConfig:
    # [DEFAULT]
    debug: bool = False
    use_syslog: bool = False
    # [haproxy_amphora]
    base_path: str = "/var/lib/octavia"
    base_cert_dir: str = "/var/lib/octavia/certs"
    haproxy_cmd: str = "/usr/sbin/haproxy"
    bind_host: str = "::"
    bind_port: int = 9443
    user_log_facility: int = 0
    administrative_log_facility: int = 1
    # [health_manager]
    controller_ip_port_list: tuple[HeartbeatTarget, ...] = ()
    heartbeat_interval: int = 10
    heartbeat_key: str | None = None
    # [amphora_agent]
    agent_server_ca: str = "/etc/octavia/certs/client_ca.pem"
    agent_server_cert: str = "/etc/octavia/certs/server.pem"
    agent_server_network_dir: str = "/etc/octavia/interfaces"
    agent_request_read_timeout: int = 180
    amphora_id: str | None = None
    agent_tls_protocol: str = "TLSv1.2"
    # [controller_worker]
    loadbalancer_topology: str = "SINGLE"
    # [amphora] (ours)
    namespace: str = "amphora-haproxy"
    service_manager: str = "auto"
    max_body_size: int = 16 * 1024 * 1024
    allowed_client_identities: tuple[str, ...] = ()
    allow_uuid_client_identity: bool = False
    client_crl_file: str | None = None
    keepalived_cmd: str = "/usr/sbin/keepalived"
    workers: int = 1
    threads: int = 4
    keepalive_timeout: int = 30
    handshake_timeout: int = 10
    heartbeat_state_file: str = ""
    # 3: Octavia's envelope; 4: timestamp and sequence signed, per-amphora key
    heartbeat_version: int = 3
    # Where this config was read from; PUT /1.0/config replaces that file.
    config_file: str = field(default="", compare=False)

    @property
    def heartbeat_state_path(self) -> Path:
        return Path(self.heartbeat_state_file or os.path.join(self.base_path, "heartbeat.state"))


_OCTAVIA_SECTIONS = {"DEFAULT", "haproxy_amphora", "health_manager", "amphora_agent",
                     "controller_worker"}
_TOPOLOGIES = ("SINGLE", "ACTIVE_STANDBY")
_SERVICE_MANAGERS = ("auto", "systemd", "direct")
_TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


def _bool(key: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key}: expected a boolean, got {value!r}")


def _int(key: str, value: str, lo: int, hi: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if not lo <= number <= hi:
        raise ConfigError(f"{key}: {number} is outside {lo}..{hi}")
    return number


def _choice(key: str, value: str, choices: tuple[str, ...]) -> str:
    for choice in choices:
        if value.strip().lower() == choice.lower():
            return choice
    raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")


def _abs_path(key: str, value: str) -> str:
    value = value.strip()
    if not value.startswith("/") or "\x00" in value:
        raise ConfigError(f"{key}: expected an absolute path, got {value!r}")
    return os.path.normpath(value)


def _existing_file(key: str, value: str) -> str:
    path = _abs_path(key, value)
    if not os.path.isfile(path):
        raise ConfigError(f"{key}: file {path} does not exist")
    return path


def _host(key: str, value: str) -> str:
    value = value.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not an IP address") from None


def _targets(key: str, value: str) -> tuple[HeartbeatTarget, ...]:
    targets = []
    for raw in (v.strip() for v in value.split(",")):
        if not raw:
            continue
        if raw.startswith("["):
            host, _, port = raw[1:].partition("]:")
        else:
            host, sep, port = raw.rpartition(":")
            if not sep or ":" in host:
                raise ConfigError(f"{key}: {raw!r} is not host:port ([v6]:port for IPv6)")
        targets.append(HeartbeatTarget(_host(key, host), _int(key, port, 1, 65535)))
    return tuple(targets)


def _uuid(key: str, value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not a UUID") from None


def _identities(key: str, value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    for item in items:
        if any(c in item for c in "\r\n\x00"):
            raise ConfigError(f"{key}: identity {item!r} has control characters")
    return items


def _name(key: str, value: str) -> str:
    value = value.strip()
    if not _NAME_RE.fullmatch(value):
        raise ConfigError(f"{key}: {value!r} must match {_NAME_RE.pattern}")
    return value


def _facility(key: str, value: str) -> int:
    return _int(key, value, 0, 7)


# section -> key -> (field name, parser). Keys of Octavia's sections not listed
# here are accepted and ignored, because Octavia's template grows over releases.
_PARSERS = {
    "DEFAULT": {
        "debug": ("debug", _bool),
        "use_syslog": ("use_syslog", _bool),
    },
    "haproxy_amphora": {
        "base_path": ("base_path", _abs_path),
        "base_cert_dir": ("base_cert_dir", _abs_path),
        "haproxy_cmd": ("haproxy_cmd", _existing_file),
        "bind_host": ("bind_host", _host),
        "bind_port": ("bind_port", lambda k, v: _int(k, v, 1, 65535)),
        "user_log_facility": ("user_log_facility", _facility),
        "administrative_log_facility": ("administrative_log_facility", _facility),
    },
    "health_manager": {
        "controller_ip_port_list": ("controller_ip_port_list", _targets),
        "heartbeat_interval": ("heartbeat_interval", lambda k, v: _int(k, v, 1, 3600)),
        "heartbeat_key": ("heartbeat_key", lambda k, v: v.strip() or None),
    },
    "amphora_agent": {
        "agent_server_ca": ("agent_server_ca", _existing_file),
        "agent_server_cert": ("agent_server_cert", _existing_file),
        "agent_server_network_dir": ("agent_server_network_dir", _abs_path),
        "agent_request_read_timeout": (
            "agent_request_read_timeout", lambda k, v: _int(k, v, 1, 3600)),
        "amphora_id": ("amphora_id", _uuid),
        "agent_tls_protocol": (
            "agent_tls_protocol", lambda k, v: _choice(k, v, _TLS_PROTOCOLS)),
    },
    "controller_worker": {
        "loadbalancer_topology": (
            "loadbalancer_topology", lambda k, v: _choice(k, v, _TOPOLOGIES)),
    },
    "amphora": {
        "namespace": ("namespace", _name),
        "service_manager": ("service_manager", lambda k, v: _choice(k, v, _SERVICE_MANAGERS)),
        "max_body_size": ("max_body_size", lambda k, v: _int(k, v, 1024, 1 << 30)),
        "allowed_client_identities": ("allowed_client_identities", _identities),
        "allow_uuid_client_identity": ("allow_uuid_client_identity", _bool),
        "client_crl_file": ("client_crl_file", _existing_file),
        "keepalived_cmd": ("keepalived_cmd", _existing_file),
        "workers": ("workers", lambda k, v: _int(k, v, 1, 16)),
        "threads": ("threads", lambda k, v: _int(k, v, 1, 64)),
        "keepalive_timeout": ("keepalive_timeout", lambda k, v: _int(k, v, 1, 3600)),
        "handshake_timeout": ("handshake_timeout", lambda k, v: _int(k, v, 1, 600)),
        "heartbeat_state_file": ("heartbeat_state_file", _abs_path),
        "heartbeat_version": ("heartbeat_version", lambda k, v: int(_choice(k, v, ("3", "4")))),
    },
}


# Fields that name paths, binaries, CAs, certificates or this amphora's identity:
# PUT /1.0/config may repeat their current value (Octavia's controller sends
# the whole file) but never change them (docs/agent.md).
IMMUTABLE_FIELDS = ("base_path", "base_cert_dir", "haproxy_cmd", "keepalived_cmd",
                    "agent_server_ca", "agent_server_cert", "agent_server_network_dir",
                    "heartbeat_state_file", "amphora_id", "namespace",
                    "client_crl_file")


def key_of(field_name: str) -> str:
    """``[section] key`` of a config field, as errors name it."""
    for section, keys in _PARSERS.items():
        for key, (name, _convert) in keys.items():
            if name == field_name:
                return f"[{section}] {key}"
    return field_name


def immutable_changes(current: AgentConfig, new: AgentConfig) -> list[str]:
    """Keys (``[section] key``) of immutable fields whose value would change."""
    return [key_of(name) for name in IMMUTABLE_FIELDS
            if getattr(current, name) != getattr(new, name)]


def _printable(section: str, key: str, value: str) -> None:
    # A control character (a newline above all) in any value, even one of an
    # Octavia key we ignore, could become a line of a file written from it.
    if not value.isprintable():
        raise ConfigError(f"[{section}] {key}: value has control characters")


def parse(text: str, *, source: str = "<config>") -> AgentConfig:
    """Parse config text; raises ConfigError naming the first bad key."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{source}: not a valid INI file: {first}") from None
    values: dict[str, object] = {}
    sections = ["DEFAULT", *parser.sections()]
    for section in sections:
        known = _PARSERS.get(section)
        if known is None:
            if section in _OCTAVIA_SECTIONS:
                for key, raw in parser.items(section, raw=True):
                    _printable(section, key, raw)
                continue
            raise ConfigError(f"[{section}]: unknown section")
        items = parser.defaults() if section == "DEFAULT" else {
            k: v for k, v in parser.items(section, raw=True) if k not in parser.defaults()}
        for key, raw in items.items():
            _printable(section, key, raw)
            spec = known.get(key)
            if spec is None:
                if section == "amphora":
                    raise ConfigError(f"[amphora] {key}: unknown key")
                continue
            name, convert = spec
            values[name] = convert(f"[{section}] {key}", raw)
    return AgentConfig(config_file=source if source.startswith("/") else "", **values)


def load(path: str | os.PathLike[str]) -> AgentConfig:
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not UTF-8 text") from None
    return parse(text, source=os.path.abspath(path))


@dataclass
class AgentSettings:
    """The agent config a controller renders, in Octavia's keys plus ``[amphora]``."""

    amphora_id: str
    base_path: str = AgentConfig.base_path
    base_cert_dir: str = AgentConfig.base_cert_dir
    bind_host: str = AgentConfig.bind_host
    bind_port: int = AgentConfig.bind_port
    agent_server_ca: str = AgentConfig.agent_server_ca
    agent_server_cert: str = AgentConfig.agent_server_cert
    agent_server_network_dir: str = AgentConfig.agent_server_network_dir
    controllers: list[str] = field(default_factory=list)
    heartbeat_interval: int = AgentConfig.heartbeat_interval
    heartbeat_key: str | None = None
    topology: str = AgentConfig.loadbalancer_topology
    debug: bool = False
    haproxy_cmd: str | None = None  # None: the image's /usr/sbin/haproxy
    amphora: dict[str, str] = field(default_factory=dict)

    def sections(self) -> dict[str, dict[str, str]]:
        """Section -> key -> value, as the file will hold them."""
        health = {"controller_ip_port_list": ", ".join(self.controllers),
                  "heartbeat_interval": str(self.heartbeat_interval)}
        if self.heartbeat_key:
            health["heartbeat_key"] = self.heartbeat_key
        out = {
            "DEFAULT": {"debug": str(self.debug)},
            "haproxy_amphora": {
                "base_path": self.base_path, "base_cert_dir": self.base_cert_dir,
                "bind_host": self.bind_host, "bind_port": str(self.bind_port)},
            "health_manager": health,
            "amphora_agent": {
                "agent_server_ca": self.agent_server_ca,
                "agent_server_cert": self.agent_server_cert,
                "agent_server_network_dir": self.agent_server_network_dir,
                "amphora_id": self.amphora_id},
            "controller_worker": {"loadbalancer_topology": self.topology},
        }
        if self.haproxy_cmd:
            out["haproxy_amphora"]["haproxy_cmd"] = self.haproxy_cmd
        if self.amphora:
            out["amphora"] = dict(self.amphora)
        return out

    def render(self) -> str:
        """The config file text; raises ConfigError for a key the agent does not read."""
        return render(self.sections())


def render(sections: dict[str, dict[str, str]]) -> str:
    """Write ``sections`` as an agent config; every key must be one :func:`parse` reads.

    Values are checked for line breaks too, so no value can add a line (and
    with it a key) to the file.
    """
    parser = configparser.ConfigParser(interpolation=None)
    for section, items in sections.items():
        known = _PARSERS.get(section)
        if known is None:
            raise ConfigError(f"[{section}]: unknown section")
        for key, value in items.items():
            if key not in known:
                raise ConfigError(f"[{section}] {key}: unknown key")
            if any(c in value for c in "\r\n\x00"):
                raise ConfigError(f"[{section}] {key}: value has control characters")
        parser[section] = dict(items)
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()
