"""The agent's own settings: ``PUT /1.0/config`` and ``PUT /1.0/certificate``."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from amphora_agent import admin
from amphora_agent.app import current_agent

blueprint = Blueprint("agent_admin", __name__)


@blueprint.put("/1.0/config")
def replace_config():  # type: ignore[no-untyped-def]
    admin.replace_config(current_agent().config, request.get_data(cache=False))
    return jsonify(message="OK"), 202


@blueprint.put("/1.0/certificate")
def rotate_certificate():  # type: ignore[no-untyped-def]
    admin.rotate_server_certificate(current_agent().config, request.get_data(cache=False))
    return jsonify(message="OK"), 202
