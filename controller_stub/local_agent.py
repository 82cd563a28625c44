"""Start real agents on loopback with a throwaway PKI: config on disk, gunicorn with mTLS.

Used by the integration tests and by the benchmarks (which may not import tests/).
"""

from __future__ import annotations

import socket
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from controller_stub.agent_process import AgentProcess
from controller_stub.client import AgentClient
from controller_stub.pki import CertificateAuthority, Issued
from controller_stub.provision import AgentSettings, write_amphora_files


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Pki:
    root: Path
    ca: CertificateAuthority = field(default_factory=CertificateAuthority.create)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.root / "ca.pem"
        self.ca_file.write_bytes(self.ca.cert_pem)
        self.client = self.ca.issue_client("controller")
        self.client_file = self.client.write(self.root / "controller.pem")

    def client_issued(self, name: str) -> tuple[Issued, Path]:
        issued = self.ca.issue_client(name)
        return issued, issued.write(self.root / f"{name}.pem")


@dataclass
class RunningAgent:
    amphora_id: str
    host: str
    port: int
    config_file: Path
    pki: Pki
    process: AgentProcess
    settings: AgentSettings

    def client(self, **kwargs: object) -> AgentClient:
        kwargs.setdefault("retries", 2)
        kwargs.setdefault("retry_interval", 0.1)
        return AgentClient(self.host, self.amphora_id, ca_file=str(self.pki.ca_file),
                           client_cert=str(self.pki.client_file), port=self.port,
                           **kwargs)  # type: ignore[arg-type]

    def client_context(self, **versions: ssl.TLSVersion) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_file))
        ctx.load_cert_chain(str(self.pki.client_file))
        for attr, value in versions.items():
            setattr(ctx, attr, value)
        return ctx

    @property
    def base_path(self) -> Path:
        return Path(self.settings.base_path)

    @property
    def cert_dir(self) -> Path:
        return Path(self.settings.base_cert_dir)


def start_agent(root: Path, pki: Pki, *, amphora: dict[str, str] | None = None,
                **settings: object) -> RunningAgent:
    amphora_id = str(uuid.uuid4())
    host = str(settings.pop("bind_host", "127.0.0.1"))
    port = free_port(host)
    options = {"namespace": f"amp-{amphora_id[:8]}", "service_manager": "direct"}
    options.update(amphora or {})
    agent_settings = AgentSettings(amphora_id=amphora_id, bind_host=host, bind_port=port,
                                   amphora=options, **settings)  # type: ignore[arg-type]
    config_file = write_amphora_files(root, agent_settings, pki.ca, pki.ca.cert_pem)
    process = AgentProcess(config_file)
    agent = RunningAgent(amphora_id, host, port, config_file, pki, process, agent_settings)
    process.start()
    try:
        with agent.client() as client:
            process.wait_ready(client)
    except BaseException:
        process.stop()
        raise
    return agent


def short_tmpdir() -> Path:
    """A short directory path: HAProxy's unix sockets live under it and a
    socket path may not exceed 107 bytes (pytest's tmp_path can)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="amp-", dir="/tmp"))
