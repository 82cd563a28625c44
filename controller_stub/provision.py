"""What a controller gives a new amphora: its agent config and certificates.

The same files go into a config drive for a VM, or straight onto disk for an
amphora running as a namespace on this host. The config itself is written by
:class:`amphora_contract.agent_config.AgentSettings`, next to the parser the
agent reads it with.
"""

from __future__ import annotations

import os
from pathlib import Path

from amphora_contract.agent_config import AgentSettings
from controller_stub.pki import CertificateAuthority, Issued

__all__ = ["AgentSettings", "write_amphora_files"]


def write_amphora_files(root: str | os.PathLike[str], settings: AgentSettings,
                        ca: CertificateAuthority, client_ca_pem: bytes,
                        server: Issued | None = None) -> Path:
    """Write server cert, client CA and agent config under ``root``.

    ``settings``' paths are rewritten to live under ``root``; ``server`` is the
    server certificate to install (default: a new one from ``ca``); returns the
    config file path.
    """
    base = Path(root)
    certs = base / "certs"
    certs.mkdir(parents=True, exist_ok=True, mode=0o700)
    server = server or ca.issue_amphora(settings.amphora_id)
    settings.agent_server_cert = str(server.write(certs / "server.pem"))
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
