"""Serve the agent with gunicorn (programmatic), mutual TLS on every connection.

One gthread worker keeps idle memory low and supports HTTP keep-alive; the
app is preloaded in the master so the worker shares its pages. The master
stays single-threaded, so a fork never copies a lock held by another thread:
the heartbeat sender is a separate fork+exec'd process that the master
supervises (amphora_agent/heartbeat_service.py), so a worker restart never
interrupts heartbeats. Each worker tells systemd when it serves and feeds the
watchdog only while it does (amphora_agent/readiness.py, docs/agent.md).
"""

from __future__ import annotations

import gc
import logging
import os
import ssl
import sys
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from amphora_agent import identity, readiness, worker
from amphora_agent.app import create_app
from amphora_agent.config import AgentConfig
from amphora_agent.heartbeat_service import HeartbeatSupervisor
from amphora_agent.tls import ServerContextCache
from amphora_agent.vrrp.guard import GuardSupervisor

LOG = logging.getLogger(__name__)


def bind_address(config: AgentConfig) -> str:
    host = config.bind_host
    return f"[{host}]:{config.bind_port}" if ":" in host else f"{host}:{config.bind_port}"


class AgentArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, which also keeps the heartbeat process running.

    ``manage_workers`` runs on every pass of the master's loop (about once a
    second and after each signal), in the master's only thread.
    """

    def start(self) -> None:
        # gunicorn's own start() says READY=1 once it listens, before any
        # worker serves; readiness is the worker's to tell (readiness.py).
        address = os.environ.pop("NOTIFY_SOCKET", None)
        try:
            super().start()
        finally:
            if address is not None:
                os.environ["NOTIFY_SOCKET"] = address

    def manage_workers(self) -> None:
        super().manage_workers()
        for child in (self.app.heartbeat, self.app.vrrp_guard):
            if child is not None:
                child.ensure_running()


class AgentServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: AgentConfig) -> None:
        self.agent_config = config
        self.tls = ServerContextCache(config.agent_server_cert, config.agent_server_ca,
                                      config.agent_tls_protocol, config.client_crl_file)
        self.tls.get()  # fail at start, not on the first connection
        identity.warn_if_unpinned(config.allowed_client_identities)
        self.heartbeat: HeartbeatSupervisor | None = None
        self.vrrp_guard: GuardSupervisor | None = None
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
            "post_worker_init": readiness.watch_worker,
            "on_exit": self._on_exit,
        }

    def load_config(self) -> None:
        for key, value in self.gunicorn_options().items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):  # type: ignore[no-untyped-def]
        app = create_app(self.agent_config)
        # Everything loaded so far lives as long as the process. Freezing it
        # keeps the worker's garbage collector from writing to (and so
        # un-sharing) the pages it inherits from the master at the fork.
        gc.collect()
        gc.freeze()
        return app

    def run(self) -> None:
        try:
            AgentArbiter(self).run()
        except RuntimeError as exc:
            print(f"\nError: {exc}\n", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)

    def _when_ready(self, _server: object) -> None:
        if self.agent_config.config_file:
            # fork+exec, from the master's only thread (asserted in
            # tests/integration/agent/test_process_model.py).
            self.heartbeat = HeartbeatSupervisor(self.agent_config.config_file)
            self.heartbeat.ensure_running()
            if self.agent_config.loadbalancer_topology == "ACTIVE_STANDBY":
                # no VIP without keepalived (amphora_agent/vrrp/guard.py)
                self.vrrp_guard = GuardSupervisor(self.agent_config.config_file)
                self.vrrp_guard.ensure_running()

    def _on_exit(self, _server: object) -> None:
        for child in (self.heartbeat, self.vrrp_guard):
            if child is not None:
                child.stop()
