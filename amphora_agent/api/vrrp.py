"""keepalived: VRRP config upload and actions; UDP (LVS) listener configs."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from amphora_agent.api.loadbalancer import _body_chunks
from amphora_agent.app import current_agent
from amphora_agent.errors import NotFound
from amphora_agent.validation import require_uuid

blueprint = Blueprint("vrrp", __name__)


@blueprint.put("/1.0/vrrp/upload")
def upload_vrrp():  # type: ignore[no-untyped-def]
    md5 = current_agent().keepalived.upload(_body_chunks())
    response = jsonify(message="OK")
    response.headers["ETag"] = md5
    return response, 200


@blueprint.put("/1.0/vrrp/<action>")
def vrrp_action(action: str):  # type: ignore[no-untyped-def]
    details = current_agent().keepalived.action(action)
    return jsonify(message="OK", details=details), 202


@blueprint.put("/1.0/listeners/<amp_id>/<listener_id>/udp_listener")
def upload_udp_listener(amp_id: str, listener_id: str):  # type: ignore[no-untyped-def]
    require_uuid(amp_id, "amphora_id")
    listener_id = require_uuid(listener_id, "listener_id")
    md5 = current_agent().lvs.upload(listener_id, _body_chunks())
    response = jsonify(message="OK")
    response.headers["ETag"] = md5
    return response, 200


@blueprint.get("/1.0/listeners/<listener_id>/udp_listener")
def get_udp_listener(listener_id: str):  # type: ignore[no-untyped-def]
    listener_id = require_uuid(listener_id, "listener_id")
    lvs = current_agent().lvs
    if not lvs.exists(listener_id):
        raise NotFound(f"UDP listener {listener_id} not found",
                       message="UDP Listener Not Found")
    return Response(lvs.get_config(listener_id), status=200, mimetype="text/plain")
