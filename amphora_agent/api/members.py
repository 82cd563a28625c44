"""Extension: member changes without a reload (``/1.0/ext/…``)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from amphora_agent.app import current_agent
from amphora_agent.errors import InvalidRequest
from amphora_agent.haproxy.members import MemberChange

blueprint = Blueprint("members", __name__)
EXTENSIONS = ("runtime-members",)
BASE = "/1.0/ext/loadbalancer/<lb_id>/backends/<backend>/servers"


@blueprint.get(BASE)
def list_servers(lb_id: str, backend: str):  # type: ignore[no-untyped-def]
    return jsonify(current_agent().members.list(lb_id, backend))


@blueprint.put(f"{BASE}/<server>")
def upsert_server(lb_id: str, backend: str, server: str):  # type: ignore[no-untyped-def]
    body = request.get_json(silent=True, cache=False)
    if body is None:
        raise InvalidRequest("body must be JSON")
    applied = current_agent().members.upsert(lb_id, backend, server,
                                             MemberChange.from_json(body))
    return jsonify(message="OK", details=f"{backend}/{server} updated", applied=applied)


@blueprint.delete(f"{BASE}/<server>")
def delete_server(lb_id: str, backend: str, server: str):  # type: ignore[no-untyped-def]
    applied = current_agent().members.remove(lb_id, backend, server)
    return jsonify(message="OK", details=f"{backend}/{server} removed", applied=applied)
