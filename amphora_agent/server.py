"""Serve the agent with gunicorn (programmatic), mutual TLS on every connection.

One gthread worker keeps idle memory low and supports HTTP keep-alive; the
app is preloaded in the master so the worker shares its pages. The
heartbeat sender runs as a thread in the master, so a worker restart never
interrupts heartbeats.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from gunicorn.app.base import BaseApplication

from amphora_agent import heartbeat, worker
from amphora_agent.app import create_app
from amphora_agent.config import AgentConfig
from amphora_agent.tls import ServerContextCache

LOG = logging.getLogger(__name__)


def bind_address(config: AgentConfig) -> str:
    host = config.bind_host
    return f"[{host}]:{config.bind_port}" if ":" in host else f"{host}:{config.bind_port}"


class AgentServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: AgentConfig) -> None:
        self.agent_config = config
        self.tls = ServerContextCache(config.agent_server_cert, config.agent_server_ca,
                                      config.agent_tls_protocol)
        self.tls.get()  # fail at start, not on the first connection
        self.sender: heartbeat.HeartbeatSender | None = None
        super().__init__()

    def gunicorn_options(self) -> dict[str, Any]:
        config = self.agent_config
        return {
            "bind": [bind_address(config)],
            "workers": config.workers,
            "worker_class": worker.worker_class(
                handshake_timeout=config.handshake_timeout,
                request_timeout=config.agent_request_read_timeout,
                max_body_size=config.max_body_size),
            "threads": config.threads,
            "keepalive": config.keepalive_timeout,
            "timeout": max(60, config.agent_request_read_timeout),
            "graceful_timeout": 10,
            "preload_app": True,
            "certfile": config.agent_server_cert,
            "keyfile": config.agent_server_cert,
            "ca_certs": config.agent_server_ca,
            "cert_reqs": ssl.CERT_REQUIRED,
            "ssl_context": self.tls.gunicorn_hook(config.handshake_timeout),
            "proc_name": "amphora-agent",
            "accesslog": "-" if config.debug else None,
            "errorlog": "-",
            "loglevel": "debug" if config.debug else "info",
            "control_socket_disable": True,
            "when_ready": self._when_ready,
            "on_exit": self._on_exit,
        }

    def load_config(self) -> None:
        for key, value in self.gunicorn_options().items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):  # type: ignore[no-untyped-def]
        return create_app(self.agent_config)

    def _when_ready(self, _server: object) -> None:
        if self.agent_config.config_file:
            from amphora_agent.health import collect_stats, should_send_heartbeat

            self.sender = heartbeat.HeartbeatSender(
                self.agent_config.config_file, collect=collect_stats,
                should_send=should_send_heartbeat)
            self.sender.start()

    def _on_exit(self, _server: object) -> None:
        if self.sender is not None:
            self.sender.stop()
