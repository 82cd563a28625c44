"""Prometheus metrics: the agent's own counters and HAProxy's exporter per LB.

The agent's counters live in a small file (``{base_path}/agent-metrics.json``)
rather than in process memory: they then survive a worker restart, add up
over several workers, and the heartbeat process's count (in its state file)
is read the same way. ``prometheus_client`` is imported only when metrics
are scraped, so an agent nobody scrapes does not carry it.

HAProxy's exporter is reached per LB through a frontend of the LB's config
that serves ``prometheus-exporter``: a unix socket bind in the LB's
directory (``prometheus.sock``, what our renderer emits), else its first TCP
bind, inside the HAProxy namespace (Octavia's
``prometheus-exporter-internal-endpoint``). Its families get an ``lb_id``
label and are merged across LBs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amphora_agent import fileutil
from amphora_agent.config import AgentConfig
from amphora_agent.haproxy import cfgfile
from amphora_agent.haproxy.layout import LbLayout, installed_lb_ids

LOG = logging.getLogger(__name__)
FILE = "agent-metrics.json"
# counter name -> help
COUNTERS = {
    "haproxy_reloads": "HAProxy reloads the agent made (successful)",
    "haproxy_reload_failures": "HAProxy reloads that failed (the previous workers kept running)",
    "haproxy_rollbacks": "Times the last known good config was put back after a failure",
    "runtime_changes": "Member changes applied through HAProxy's runtime API, without a reload",
    "config_validation_failures": "Uploaded configs refused by haproxy -c or keepalived -t",
}
EXPORTER_TIMEOUT = 5.0
MAX_EXPORTER_REPLY = 32 << 20
_BIND_RE = re.compile(r"^\s*bind\s+(\S+)")


def _file(config: AgentConfig) -> Path:
    return Path(config.base_path) / FILE


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fileutil.ensure_dir(path.parent)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_counters(config: AgentConfig) -> dict[str, int]:
    try:
        data = json.loads(_file(config).read_text())
    except (OSError, ValueError):
        data = {}
    return {name: int(data.get(name, 0)) if isinstance(data, dict) else 0 for name in COUNTERS}


def count(config: AgentConfig, name: str, amount: int = 1) -> None:
    """Add to one of :data:`COUNTERS`; never fails the operation it counts."""
    assert name in COUNTERS
    path = _file(config)
    try:
        with _locked(path):
            values = read_counters(config)
            values[name] += amount
            fileutil.atomic_write(path, json.dumps(values).encode(), sync_dir=False)
    except OSError as exc:
        LOG.warning("cannot count %s: %s", name, exc)


def heartbeats_sent(config: AgentConfig) -> int:
    try:
        data = json.loads(config.heartbeat_state_path.read_text())
        return int(data.get("heartbeats_sent", 0))
    except (OSError, ValueError, AttributeError, TypeError):
        return 0


def _exporter_binds(text: str) -> list[str]:
    """Bind addresses of frontends that serve HAProxy's Prometheus exporter."""
    lines = text.splitlines()
    binds: list[str] = []
    for section in cfgfile.sections(lines):
        if section.kind not in ("frontend", "listen"):
            continue
        body = lines[section.start + 1:section.end]
        if any("use-service prometheus-exporter" in line for line in body):
            binds += [m.group(1) for line in body if (m := _BIND_RE.match(line))]
    return binds


def _http_get(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
    chunks, size = [], 0
    while chunk := sock.recv(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_EXPORTER_REPLY:
            raise OSError("exporter reply too large")
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or head.split(b" ", 2)[1:2] != [b"200"]:
        raise OSError(f"exporter answered {head[:40]!r}")
    if re.search(rb"(?im)^transfer-encoding:\s*chunked\s*$", head):
        return _dechunk(body)
    return body


def _dechunk(body: bytes) -> bytes:
    """HAProxy's exporter answers chunked, even to HTTP/1.0."""
    out, pos = [], 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise OSError("truncated chunked reply")
        try:
            size = int(body[pos:end].split(b";")[0], 16)
        except ValueError:
            raise OSError("bad chunk size in exporter reply") from None
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2:end + 2 + size])
        pos = end + 2 + size + 2


def scrape_lb(config: AgentConfig, layout: LbLayout) -> str | None:
    """The LB's exporter output, or None if it has no exporter frontend."""
    try:
        text = layout.config.read_text(errors="replace")
    except OSError:
        return None
    binds = _exporter_binds(text)
    unix = [b.removeprefix("unix@") for b in binds
            if b.removeprefix("unix@") == str(layout.prometheus_socket)]
    if unix:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(EXPORTER_TIMEOUT)
            sock.connect(unix[0])
            return _http_get(sock).decode(errors="replace")
    for bind in binds:
        host, sep, port = bind.rpartition(":")
        if not sep or not port.isdigit() or host.startswith(("unix@", "/", "abns@")):
            continue
        host = host.strip("[]") or "127.0.0.1"
        if host in ("0.0.0.0", "::", "*"):  # noqa: S104 - reading, not binding
            host = "127.0.0.1" if host != "::" else "::1"
        from amphora_contract import netns

        with netns.entered(config.namespace):
            sock = socket.create_connection((host, int(port)), timeout=EXPORTER_TIMEOUT)
        with sock:
            return _http_get(sock).decode(errors="replace")
    return None


def _certificate_expiry(config: AgentConfig) -> dict[str, float]:
    from cryptography import x509

    out = {}
    with contextlib.suppress(OSError, ValueError):
        cert = x509.load_pem_x509_certificate(Path(config.agent_server_cert).read_bytes())
        out["server"] = cert.not_valid_after_utc.timestamp() - time.time()
    return out


def vrrp_states(config: AgentConfig) -> tuple[bool, dict[str, int]]:
    """keepalived running, and per VRRP instance 1 (holds every VIP: MASTER),
    0 (holds none: BACKUP or FAULT while running), -1 (keepalived down or VIPs split).

    Read from what the data path uses, the VIPs on the instance's interface in
    the HAProxy namespace, not from keepalived's own reports: it works with any
    uploaded config (ours or Octavia's template) and needs no notify script.
    """
    from amphora_agent import health
    from amphora_agent.network.links import interface_holding
    from amphora_agent.vrrp import instances

    conf = health.keepalived_config(config)
    if conf is None:
        return False, {}
    running = health.keepalived_running(config, conf)
    states: dict[str, int] = {}
    for inst in instances.load(Path(conf)):
        held = [interface_holding(config.namespace, vip.address) == vip.interface
                for vip in inst.vips]
        if not running or not held or (any(held) and not all(held)):
            states[inst.name] = -1
        else:
            states[inst.name] = 1 if all(held) else 0
    return running, states


def render(config: AgentConfig) -> bytes:
    """The Prometheus text exposition of everything above."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.parser import text_string_to_metric_families

    class Collector:
        def collect(self) -> Iterator[Any]:
            values = read_counters(config)
            for name, help_text in COUNTERS.items():
                yield CounterMetricFamily(f"amphora_agent_{name}", help_text,
                                          value=values[name])
            yield CounterMetricFamily("amphora_agent_heartbeats_sent",
                                      "Heartbeats handed to the network by the heartbeat process",
                                      value=heartbeats_sent(config))
            expiry = GaugeMetricFamily("amphora_agent_certificate_expiry_seconds",
                                       "Seconds until the certificate expires",
                                       labels=["certificate"])
            for name, seconds in _certificate_expiry(config).items():
                expiry.add_metric([name], seconds)
            yield expiry
            running, states = vrrp_states(config)
            yield GaugeMetricFamily("amphora_keepalived_running",
                                    "1 if a keepalived process runs this amphora's VRRP config",
                                    value=int(running))
            vrrp = GaugeMetricFamily("amphora_vrrp_state",
                                     "1 MASTER (VIPs held), 0 BACKUP/FAULT (none held), "
                                     "-1 keepalived down or unknown", labels=["instance"])
            for name, value in states.items():
                vrrp.add_metric([name], value)
            yield vrrp
            up = GaugeMetricFamily("amphora_agent_haproxy_exporter_up",
                                   "1 if the LB's HAProxy exporter answered, 0 if it failed, "
                                   "absent if the LB's config has no exporter frontend",
                                   labels=["lb_id"])
            merged: dict[str, Metric] = {}
            for lb_id in installed_lb_ids(Path(config.base_path)):
                try:
                    text = scrape_lb(config, LbLayout(Path(config.base_path), lb_id))
                    families = list(text_string_to_metric_families(text or ""))
                except (OSError, ValueError) as exc:
                    LOG.warning("LB %s: HAProxy exporter: %s", lb_id, exc)
                    up.add_metric([lb_id], 0)
                    continue
                if text is None:
                    continue
                up.add_metric([lb_id], 1)
                for family in families:
                    into = merged.setdefault(family.name, Metric(
                        family.name, family.documentation, family.type, family.unit))
                    for sample in family.samples:
                        into.samples.append(sample._replace(
                            labels={"lb_id": lb_id, **sample.labels}))
            yield up
            yield from merged.values()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())  # type: ignore[arg-type]
    return generate_latest(registry)
