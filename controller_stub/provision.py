"""What a controller gives a new amphora: its agent config and certificates.

The same files go into a config drive for a VM, or straight onto disk for an
amphora running as a namespace on this host.
"""

from __future__ import annotations

import configparser
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from controller_stub.pki import CertificateAuthority


@dataclass
class AgentSettings:
    """The agent config a controller renders, in Octavia's keys plus ``[amphora]``."""

    amphora_id: str
    base_path: str = "/var/lib/octavia"
    base_cert_dir: str = "/var/lib/octavia/certs"
    bind_host: str = "::"
    bind_port: int = 9443
    agent_server_ca: str = "/etc/octavia/certs/client_ca.pem"
    agent_server_cert: str = "/etc/octavia/certs/server.pem"
    agent_server_network_dir: str = "/etc/octavia/interfaces"
    controllers: list[str] = field(default_factory=list)
    heartbeat_interval: int = 10
    heartbeat_key: str | None = None
    topology: str = "SINGLE"
    debug: bool = False
    amphora: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        parser = configparser.ConfigParser(interpolation=None)
        parser["DEFAULT"] = {"debug": str(self.debug)}
        parser["haproxy_amphora"] = {
            "base_path": self.base_path, "base_cert_dir": self.base_cert_dir,
            "bind_host": self.bind_host, "bind_port": str(self.bind_port)}
        health = {"controller_ip_port_list": ", ".join(self.controllers),
                  "heartbeat_interval": str(self.heartbeat_interval)}
        if self.heartbeat_key:
            health["heartbeat_key"] = self.heartbeat_key
        parser["health_manager"] = health
        parser["amphora_agent"] = {
            "agent_server_ca": self.agent_server_ca,
            "agent_server_cert": self.agent_server_cert,
            "agent_server_network_dir": self.agent_server_network_dir,
            "amphora_id": self.amphora_id}
        parser["controller_worker"] = {"loadbalancer_topology": self.topology}
        if self.amphora:
            parser["amphora"] = dict(self.amphora)
        out = io.StringIO()
        parser.write(out)
        return out.getvalue()


def write_amphora_files(root: str | os.PathLike[str], settings: AgentSettings,
                        ca: CertificateAuthority, client_ca_pem: bytes) -> Path:
    """Write server cert, client CA and agent config under ``root``.

    ``settings``' paths are rewritten to live under ``root``; returns the
    config file path.
    """
    base = Path(root)
    certs = base / "certs"
    certs.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.agent_server_cert = str(ca.issue_amphora(settings.amphora_id).write(
        certs / "server.pem"))
    client_ca = certs / "client_ca.pem"
    client_ca.write_bytes(client_ca_pem)
    settings.agent_server_ca = str(client_ca)
    settings.base_path = str(base / "lib")
    settings.base_cert_dir = str(base / "lib" / "certs")
    settings.agent_server_network_dir = str(base / "interfaces")
    config_file = base / "amphora-agent.conf"
    fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(settings.render())
    return config_file
