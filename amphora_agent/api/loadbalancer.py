"""HAProxy load balancers: upload, actions, config read, listeners, delete."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from amphora_agent.app import current_agent
from amphora_agent.validation import require_uuid

blueprint = Blueprint("loadbalancer", __name__)
CHUNK = 64 * 1024


def _body_chunks():  # type: ignore[no-untyped-def]
    """Stream the raw body; Werkzeug's limited stream enforces the size limit."""
    stream = request.stream
    while chunk := stream.read(CHUNK):
        yield chunk


@blueprint.put("/1.0/loadbalancer/<amp_id>/<lb_id>/haproxy")
def upload_haproxy(amp_id: str, lb_id: str):  # type: ignore[no-untyped-def]
    require_uuid(amp_id, "amphora_id")
    require_uuid(lb_id, "lb_id")
    md5 = current_agent().loadbalancers.upload(amp_id, lb_id, _body_chunks())
    response = jsonify(message="OK")
    response.headers["ETag"] = md5
    return response, 202


@blueprint.get("/1.0/loadbalancer/<lb_id>/haproxy")
def get_haproxy(lb_id: str):  # type: ignore[no-untyped-def]
    data, md5 = current_agent().loadbalancers.get_config(lb_id)
    return Response(data, status=200, mimetype="text/plain", headers={"ETag": md5})


@blueprint.put("/1.0/loadbalancer/<lb_id>/<action>")
def lb_action(lb_id: str, action: str):  # type: ignore[no-untyped-def]
    agent = current_agent()
    if agent.lvs.exists(require_uuid(lb_id, "lb_id")):  # a UDP listener (Octavia's dispatch)
        return jsonify(message="OK", details=agent.lvs.action(lb_id, action)), 202
    details = agent.loadbalancers.action(lb_id, action)
    return jsonify(message="OK", details=details), 202


@blueprint.get("/1.0/listeners")
def listeners():  # type: ignore[no-untyped-def]
    agent = current_agent()
    return jsonify(agent.loadbalancers.listeners() + agent.lvs.statuses())


@blueprint.delete("/1.0/listeners/<lb_id>")
def delete_listener(lb_id: str):  # type: ignore[no-untyped-def]
    agent = current_agent()
    if agent.lvs.exists(require_uuid(lb_id, "lb_id")):
        agent.lvs.delete(lb_id)
        return jsonify(message="OK")
    agent.loadbalancers.delete(lb_id)
    return jsonify(message="OK")
