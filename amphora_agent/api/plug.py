"""Plugging and interfaces: ``/1.0/plug/vip/{vip}``, ``/1.0/plug/network``, ``/1.0/interface/{ip}``.

Thin: parse and validate the whole body first (400 before anything changes),
then call :class:`amphora_agent.network.plug.Networking`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from amphora_agent.app import current_agent
from amphora_agent.errors import InvalidRequest
from amphora_agent.network import schema
from amphora_agent.network.plug import Networking
from amphora_agent.validation import require_ip

blueprint = Blueprint("plug", __name__)


def networking() -> Networking:
    """One per app: its lock must be shared by every request thread."""
    cached = current_app.extensions.get("amphora.networking")
    if cached is None:
        cached = Networking.from_config(current_agent().config)
        current_app.extensions["amphora.networking"] = cached
    return cached


def _json_body() -> Any:
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("body is not valid JSON") from None


def _reached_at() -> str | None:
    """The agent's address this request arrived at (on the management NIC)."""
    sock = request.environ.get("gunicorn.socket")
    try:
        return str(sock.getsockname()[0]) if sock is not None else None
    except OSError:
        return None


@blueprint.post("/1.0/plug/vip/<vip>")
def plug_vip(vip: str):  # type: ignore[no-untyped-def]
    plug = schema.parse_vip_plug(vip, _json_body())
    return jsonify(message="OK", details=networking().plug_vip(plug, _reached_at())), 202


@blueprint.post("/1.0/plug/network")
def plug_network():  # type: ignore[no-untyped-def]
    plug = schema.parse_network_plug(_json_body())
    return jsonify(message="OK",
                   details=networking().plug_network(plug, _reached_at())), 202


@blueprint.get("/1.0/interface/<ip>")
def get_interface(ip: str):  # type: ignore[no-untyped-def]
    address = require_ip(ip)
    return jsonify(message="OK", interface=networking().interface_for(address))


@blueprint.put("/1.0/interface/<ip>/rules")
def set_rules(ip: str):  # type: ignore[no-untyped-def]
    address = require_ip(ip)
    wanted = schema.parse_rules(_json_body())
    networking().set_rules(address, wanted)
    return jsonify(message="OK")
