"""Version discovery, ``/1.0/info`` and ``/1.0/details``."""

from __future__ import annotations

from flask import Blueprint, jsonify

from amphora_agent import app as agent_app
from amphora_agent import facts

blueprint = Blueprint("info", __name__)


@blueprint.get("/")
def root():  # type: ignore[no-untyped-def]
    agent = agent_app.current_agent()
    return jsonify(api_version=agent_app.API_VERSION, extensions=sorted(agent.extensions))


@blueprint.get("/1.0/info")
def info():  # type: ignore[no-untyped-def]
    return jsonify(facts.info(agent_app.current_agent()))


@blueprint.get("/1.0/details")
def details():  # type: ignore[no-untyped-def]
    return jsonify(facts.details(agent_app.current_agent()))
