"""Per-LB certificates: ``/1.0/loadbalancer/{lb_id}/certificates/{filename}``."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from amphora_agent.app import current_agent

blueprint = Blueprint("certificates", __name__)
# <path:> so that "../x.pem" reaches validation (a 400) instead of routing (a 404).
ROUTE = "/1.0/loadbalancer/<lb_id>/certificates/<path:filename>"


@blueprint.put(ROUTE)
def upload(lb_id: str, filename: str):  # type: ignore[no-untyped-def]
    certs = current_agent().certs
    certs.path(lb_id, filename)  # validate the path before reading the body
    md5 = certs.put(lb_id, filename, request.get_data(cache=False))
    response = jsonify(message="OK")
    response.headers["ETag"] = md5
    return response, 200


@blueprint.get(ROUTE)
def md5sum(lb_id: str, filename: str):  # type: ignore[no-untyped-def]
    return jsonify(md5sum=current_agent().certs.md5(lb_id, filename))


@blueprint.delete(ROUTE)
def delete(lb_id: str, filename: str):  # type: ignore[no-untyped-def]
    current_agent().certs.delete(lb_id, filename)
    return jsonify(message="OK")
