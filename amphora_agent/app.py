"""Flask application factory for the agent.

Blueprints stay thin: they parse the request, call the plain objects held by
:class:`Agent`, and shape the response. Every error leaves as JSON: routing
errors as ``{"error", "http_code"}`` and handler errors as
``{"message", "details"}``, because Octavia's controller reads a non-JSON
404 as "agent not ready" and retries it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from amphora_agent import bodylimit, identity
from amphora_agent.certstore import CertStore
from amphora_agent.config import AgentConfig
from amphora_agent.errors import ApiError
from amphora_agent.haproxy.manager import LoadBalancers
from amphora_agent.haproxy.members import Members
from amphora_agent.readiness import PROBE_ENVIRON_KEY
from amphora_agent.services import ServiceManager, make_service_manager
from amphora_agent.vrrp.keepalived import Keepalived, LvsListeners
from amphora_contract import api
from amphora_contract.api import API_VERSION

LOG = logging.getLogger(__name__)
__all__ = ["API_VERSION", "Agent", "create_app", "current_agent"]


@dataclass
class Agent:
    """Everything a request handler needs, built once per process."""

    config: AgentConfig
    certs: CertStore
    services: ServiceManager
    loadbalancers: LoadBalancers
    members: Members
    keepalived: Keepalived
    lvs: LvsListeners
    extensions: list[str] = field(default_factory=list)


def current_agent() -> Agent:
    return current_app.extensions["amphora"]


def create_app(config: AgentConfig, *, services: ServiceManager | None = None) -> Flask:
    app = Flask("amphora_agent")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_size
    app.json.sort_keys = False  # type: ignore[attr-defined]
    services = services or make_service_manager(config)
    certs = CertStore(config.base_cert_dir)
    agent = Agent(
        config=config,
        certs=certs,
        services=services,
        loadbalancers=(lbs := LoadBalancers(config, services, certs)),
        members=Members(lbs),
        keepalived=Keepalived(config, services),
        lvs=LvsListeners(config, services),
    )
    app.extensions["amphora"] = agent

    from amphora_agent.api import (
        agent_admin,
        certificates,
        info,
        loadbalancer,
        members,
        plug,
        vrrp,
    )
    from amphora_agent.api import metrics as metrics_api

    for module in (info, certificates, agent_admin, loadbalancer, members, plug, vrrp,
                   metrics_api):
        app.register_blueprint(module.blueprint)
        agent.extensions.extend(getattr(module, "EXTENSIONS", ()))

    clients = identity.ClientPolicy(config)

    @app.before_request
    def _pin_client_identity():  # type: ignore[no-untyped-def]
        if request.environ.get(PROBE_ENVIRON_KEY):  # the worker's own probe
            return None
        sock = request.environ.get("gunicorn.socket")
        peercert = sock.getpeercert() if hasattr(sock, "getpeercert") else None
        refusal = clients.current().refusal(peercert)
        if refusal is None:
            return None
        LOG.warning("refused client: %s", refusal)
        return jsonify(message="Forbidden", details=refusal), 403

    @app.before_request
    def _limit_body() -> None:
        bodylimit.enforce(config.max_body_size)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):  # type: ignore[no-untyped-def]
        return jsonify(exc.body()), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = exc.code or 500
        return jsonify(api.routing_error_body(exc.description or exc.name, code)), code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        # The exception text can carry paths, addresses or key material: it
        # goes to the log only, never to the client.
        LOG.exception("unhandled error in %s %s", request.method, request.path)
        return jsonify(message="Internal Server Error",
                       details="an unexpected error occurred; see the agent log"), 500

    return app
