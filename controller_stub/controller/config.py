"""``amphora-controller`` configuration: an INI file (keys in docs/controller.md)."""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller_stub.agent_launch import AgentLaunch
from controller_stub.controller import quotas
from controller_stub.controller.flows import Budget
from controller_stub.controller.health import HealthSettings
from controller_stub.controller.housekeeping import HousekeepingSettings

_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BASE_URI_RE = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]{1,255}(/[A-Za-z0-9._~\-/]{0,512})?")
_DRIVERS = ("local", "openstack")
_IMAGE_SOURCES = ("local", "glance")


@dataclass
class ApiSettings:
    """``[api]``: the REST API (docs/api.md); ``[keystone_authtoken]`` as in Octavia."""

    enabled: bool = True
    bind_host: str = "127.0.0.1"
    bind_port: int = 9876  # 0: any free port (the bound one is logged)
    auth_strategy: str = "noauth"
    default_project: str | None = None
    static_tokens_file: str | None = None
    threads: int = 8
    # Octavia's [api_settings] api_base_uri: the public URL in links (pagination,
    # version document) when a proxy stands in front; None: from each request
    base_uri: str | None = None
    keystone_authtoken: dict[str, str] = field(default_factory=dict)


@dataclass
class ControllerConfig:
    controller_id: str = field(default_factory=socket.gethostname)
    workers: int = 2
    lease_seconds: float = 10.0
    poll_seconds: float = 0.5
    database_url: str = "sqlite:////var/lib/amphora/controller.db"
    compute_driver: str = "local"
    compute_workdir: str = "/var/lib/amphora/fabric"
    compute_zones: str = ""
    # local driver: the agent its amphorae run (controller_stub/agent_launch.py)
    compute_agent_venv: str = ""
    compute_agent_kind: str = "amphora"
    certificate_directory: str = "/var/lib/amphora/certificates"
    image_source: str = "local"
    glance_cloud: str | None = None
    image_cache_seconds: float = 300.0
    budget: Budget = field(default_factory=Budget)
    housekeeping: HousekeepingSettings = field(default_factory=HousekeepingSettings)
    log_level: str = "INFO"
    keep_failed_amphorae: bool = False
    # [haproxy_amphora] connection_logging, as Octavia names it: False renders
    # `no log` (no request logs; about 1/3 of HAProxy's CPU per keep-alive
    # request, docs/haproxy.md), HAProxy's own notices still go out
    connection_logging: bool = True
    # [notifications], [statistics] and [openstack]: passed to their drivers as they are
    notifications: dict[str, str] = field(default_factory=dict)
    statistics: dict[str, str] = field(default_factory=lambda: {"drivers": "state_store"})
    openstack: dict[str, str] = field(default_factory=dict)
    health: HealthSettings = field(default_factory=HealthSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    # [quotas] default_<kind>_quota, as Octavia's; -1 is unlimited
    quota_defaults: dict[str, int] = field(default_factory=dict)


def _float(section: configparser.SectionProxy, key: str, default: float, low: float,
           high: float) -> float:
    value = section.getfloat(key, fallback=default)
    if not low <= value <= high:
        raise ValueError(f"[{section.name}] {key}: must be {low}..{high}")
    return value


def _bool(section: configparser.SectionProxy, key: str, default: bool) -> bool:
    try:
        return section.getboolean(key, fallback=default)
    except ValueError:
        raise ValueError(f"[{section.name}] {key}: true or false, not "
                         f"{section.get(key)!r}") from None


def _int(section: configparser.SectionProxy, key: str, default: int, low: int,
         high: int) -> int:
    value = section.getint(key, fallback=default)
    if not low <= value <= high:
        raise ValueError(f"[{section.name}] {key}: must be {low}..{high}")
    return value


class _RecordingParser(configparser.ConfigParser):
    """Remembers every key it was asked for, so keys nobody reads (a typo, a
    key in the wrong section) are refused instead of silently ignored."""

    def __init__(self) -> None:
        super().__init__(interpolation=None)
        self.read_keys: set[tuple[str, str]] = set()

    def get(self, section: str, option: str, **kwargs: Any) -> Any:  # type: ignore[override]
        self.read_keys.add((section, self.optionxform(option)))
        return super().get(section, option, **kwargs)


# Sections handed on whole (to drivers or keystonemiddleware), checked there.
_PASSED_ON = {"notifications", "statistics", "openstack", "keystone_authtoken", "quotas"}


def _refuse_unread(parser: _RecordingParser) -> None:
    unread = sorted(f"[{name}] {key}" for name in parser.sections() if name not in _PASSED_ON
                    for key in parser[name]
                    if key not in parser.defaults() and (name, key) not in parser.read_keys)
    if unread:
        raise ValueError(f"unknown key(s): {', '.join(unread)}")


def load(path: str | os.PathLike[str]) -> ControllerConfig:
    parser = _RecordingParser()
    if not parser.read(Path(path)):
        raise FileNotFoundError(f"cannot read config file {path}")
    known = {"controller", "database", "compute", "images", "budget", "housekeeping",
             "certificates", "notifications", "statistics", "openstack", "health_manager",
             "api", "keystone_authtoken", "quotas", "haproxy_amphora"}
    for name in sorted(known):
        if not parser.has_section(name):
            parser.add_section(name)
    unknown = set(parser.sections()) - known
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(sorted(unknown))}")
    c, d = parser["controller"], ControllerConfig()
    cfg = ControllerConfig(
        controller_id=c.get("id", fallback=d.controller_id),
        workers=_int(c, "workers", d.workers, 1, 64),
        lease_seconds=_float(c, "lease_seconds", d.lease_seconds, 1, 3600),
        poll_seconds=_float(c, "poll_seconds", d.poll_seconds, 0.01, 60),
        log_level=c.get("log_level", fallback=d.log_level).upper(),
        keep_failed_amphorae=_bool(c, "keep_failed_amphorae", d.keep_failed_amphorae),
        connection_logging=_bool(parser["haproxy_amphora"], "connection_logging",
                                 d.connection_logging),
        database_url=parser["database"].get("url", fallback=d.database_url),
        compute_driver=parser["compute"].get("driver", fallback=d.compute_driver),
        compute_workdir=parser["compute"].get("workdir", fallback=d.compute_workdir),
        compute_zones=parser["compute"].get("zones", fallback=d.compute_zones),
        compute_agent_venv=parser["compute"].get("agent_venv", fallback=d.compute_agent_venv),
        compute_agent_kind=parser["compute"].get("agent_kind", fallback=d.compute_agent_kind),
        certificate_directory=parser["certificates"].get(
            "directory", fallback=d.certificate_directory),
        image_source=parser["images"].get("source", fallback=d.image_source),
        glance_cloud=parser["images"].get("cloud", fallback=None),
        image_cache_seconds=_float(parser["images"], "cache_seconds",
                                   d.image_cache_seconds, 0, 86400),
        budget=Budget(
            attempts=_int(parser["budget"], "attempts", d.budget.attempts, 1, 100),
            seconds=_float(parser["budget"], "seconds", d.budget.seconds, 0.1, 3600),
            backoff=_float(parser["budget"], "backoff", d.budget.backoff, 0, 60),
            agent_timeout=_float(parser["budget"], "agent_timeout", d.budget.agent_timeout,
                                 0.1, 600),
            boot_timeout=_float(parser["budget"], "boot_timeout", d.budget.boot_timeout,
                                1, 3600)),
        housekeeping=_housekeeping(parser["housekeeping"]),
        notifications=dict(parser["notifications"]),
        statistics={"drivers": "state_store", **dict(parser["statistics"])},
        openstack=dict(parser["openstack"]),
        health=_health(parser["health_manager"]),
        api=_api(parser["api"], dict(parser["keystone_authtoken"])),
        quota_defaults=_quotas(parser["quotas"]),
    )
    if not _ID_RE.fullmatch(cfg.controller_id):
        raise ValueError("[controller] id: 1-128 characters of A-Z a-z 0-9 . _ : -")
    if cfg.compute_driver not in _DRIVERS:
        raise ValueError(f"[compute] driver: one of {', '.join(_DRIVERS)}")
    if cfg.compute_zones and not all(_ID_RE.fullmatch(z.strip())
                                     for z in cfg.compute_zones.split(",")):
        raise ValueError("[compute] zones: comma-separated names of A-Z a-z 0-9 . _ : -")
    AgentLaunch.parse(cfg.compute_agent_venv, cfg.compute_agent_kind)  # refuses a bad one
    if cfg.image_source not in _IMAGE_SOURCES:
        raise ValueError(f"[images] source: one of {', '.join(_IMAGE_SOURCES)}")
    if not re.fullmatch(r"(sqlite|postgresql)(\+\w+)?://.*", cfg.database_url):
        raise ValueError("[database] url: a sqlite:// or postgresql:// URL")
    if cfg.lease_seconds <= cfg.budget.agent_timeout:
        raise ValueError("[controller] lease_seconds must exceed [budget] agent_timeout")
    _refuse_unread(parser)
    return cfg


def _housekeeping(h: configparser.SectionProxy) -> HousekeepingSettings:
    d, day = HousekeepingSettings(), 86400.0
    settings = HousekeepingSettings(
        interval=_float(h, "interval", d.interval, 0.1, day),
        flow_retention=_float(h, "flow_retention", d.flow_retention, 0, 30 * day),
        deleted_retention=_float(h, "deleted_retention", d.deleted_retention, 0, 365 * day),
        cert_rotate_before=_float(h, "cert_rotate_before", d.cert_rotate_before, 0, 365 * day),
        cert_validity=day * _float(h, "cert_validity_days", d.cert_validity / day, 1, 3650),
        orphans=_bool(h, "orphan_cleanup", d.orphans),
    )
    if settings.cert_rotate_before >= settings.cert_validity:
        raise ValueError("[housekeeping] cert_rotate_before must be shorter than "
                         "cert_validity_days, or every run would rotate every certificate")
    return settings


def _health(h: configparser.SectionProxy) -> HealthSettings:
    d = HealthSettings()
    settings = HealthSettings(
        enabled=_bool(h, "enabled", d.enabled),
        bind_ip=h.get("bind_ip", fallback=d.bind_ip).strip(),
        bind_port=_int(h, "bind_port", d.bind_port, 0, 65535),  # 0: any free port
        master_key=h.get("heartbeat_key", fallback=d.master_key).strip(),
        accept_v3=_bool(h, "accept_v3_heartbeats", d.accept_v3),
        heartbeat_interval=_int(h, "heartbeat_interval", d.heartbeat_interval, 1, 3600),
        timeout=_float(h, "heartbeat_timeout", d.timeout, 0, 86400),
        check_interval=_float(h, "check_interval", d.check_interval, 0, 3600),
        breaker_threshold=_float(h, "failover_threshold", d.breaker_threshold, 0, 1),
        breaker_min_stale=_int(h, "failover_min_stale", d.breaker_min_stale, 1, 1_000_000),
        failover=_bool(h, "failover", d.failover),
        batch_size=_int(h, "batch_size", d.batch_size, 1, 100_000),
        queue_size=_int(h, "queue_size", d.queue_size, 1, 1_000_000),
    )
    if settings.enabled and len(settings.master_key) < 16:
        raise ValueError("[health_manager] heartbeat_key: at least 16 characters")
    if settings.bind_ip and not re.fullmatch(r"[0-9a-fA-F.:]{2,45}", settings.bind_ip):
        raise ValueError("[health_manager] bind_ip: an IP address")
    return settings


def _quotas(q: configparser.SectionProxy) -> dict[str, int]:
    """``default_<kind>_quota`` keys (Octavia's names) to the quota columns."""
    names = {f"default_{kind}_quota": kind for kind in quotas.KINDS}
    unknown = sorted(set(q) - set(names))
    if unknown:
        raise ValueError(f"[quotas] unknown key(s) {', '.join(unknown)}")
    return {names[key]: _int(q, key, quotas.UNLIMITED, quotas.UNLIMITED, quotas.MAX_QUOTA)
            for key in q}


def _api(a: configparser.SectionProxy, keystone: dict[str, str]) -> ApiSettings:
    d = ApiSettings()
    settings = ApiSettings(
        enabled=_bool(a, "enabled", d.enabled),
        bind_host=a.get("bind_host", fallback=d.bind_host).strip(),
        bind_port=_int(a, "bind_port", d.bind_port, 0, 65535),
        auth_strategy=a.get("auth_strategy", fallback=d.auth_strategy).strip(),
        default_project=a.get("default_project", fallback=None),
        static_tokens_file=a.get("static_tokens_file", fallback=None),
        threads=_int(a, "threads", d.threads, 1, 256),
        base_uri=a.get("base_uri", fallback=None),
        keystone_authtoken=keystone,
    )
    if settings.base_uri is not None and not _BASE_URI_RE.fullmatch(settings.base_uri):
        raise ValueError("[api] base_uri: an http:// or https:// URL with no query or "
                         "fragment, e.g. https://lb.example.com:9876")
    if settings.auth_strategy not in ("noauth", "static", "keystone"):
        raise ValueError("[api] auth_strategy: one of noauth, static, keystone")
    try:
        host = ipaddress.ip_address(settings.bind_host)
    except ValueError:
        raise ValueError("[api] bind_host: an IP address") from None
    if settings.enabled and settings.auth_strategy == "noauth" and not host.is_loopback:
        raise ValueError(f"[api] bind_host {host}: auth_strategy noauth serves loopback "
                         "addresses only; set auth_strategy = static or keystone to bind "
                         "another address")
    if settings.default_project is not None and not _ID_RE.fullmatch(settings.default_project):
        raise ValueError("[api] default_project: 1-128 characters of A-Z a-z 0-9 . _ : -")
    if settings.auth_strategy == "static" and not settings.static_tokens_file:
        raise ValueError("[api] static_tokens_file: needed with auth_strategy static")
    if settings.auth_strategy == "keystone" and not keystone:
        raise ValueError("[keystone_authtoken]: needed with auth_strategy keystone")
    return settings
