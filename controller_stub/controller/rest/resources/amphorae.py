"""``/octavia/amphorae``: the operator's view of amphorae, failover and counters."""

from __future__ import annotations

from flask import Blueprint, Response

from controller_stub.controller import amphorae
from controller_stub.controller.constants import PENDING_STATUSES
from controller_stub.controller.rest import common, context
from controller_stub.controller.rest.errors import FORBIDDEN, ApiError, immutable
from controller_stub.controller.rest.schema import LIST_QUERY, Out, route

blueprint = Blueprint("amphorae", __name__)


class AmphoraResponse(Out):
    id: str
    loadbalancer_id: str | None = None
    compute_id: str | None = None
    lb_network_ip: str | None = None
    vrrp_ip: str | None = None
    ha_ip: str | None = None
    vrrp_port_id: str | None = None
    ha_port_id: str | None = None
    cert_expiration: str | None = None
    cert_busy: bool = False
    role: str | None = None
    status: str
    vrrp_interface: str | None = None
    vrrp_id: int | None = None
    vrrp_priority: int | None = None
    cached_zone: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    image_id: str | None = None
    compute_flavor: str | None = None


class AmphoraStats(Out):
    id: str
    listener_id: str
    loadbalancer_id: str | None = None
    active_connections: int
    bytes_in: int
    bytes_out: int
    request_errors: int
    total_connections: int


def _admin() -> None:
    if not context.current().is_admin:
        raise ApiError(403, FORBIDDEN)


@route(blueprint, "/octavia/amphorae", "GET", query=LIST_QUERY,
       response=("amphorae", AmphoraResponse, True))
def list_amphorae() -> Response:
    """List amphorae."""
    _admin()
    return common.answer_list("amphorae", AmphoraResponse,
                              amphorae.list_amphorae(common.engine().sessions))


@route(blueprint, "/octavia/amphorae/<amphora_id>", "GET", query=("fields",),
       response=("amphora", AmphoraResponse, False))
def show_amphora(amphora_id: str) -> Response:
    """Show an amphora."""
    _admin()
    return common.answer("amphora", AmphoraResponse,
                         amphorae.get_amphora(common.engine().sessions, amphora_id),
                         fields=True)


@route(blueprint, "/octavia/amphorae/<amphora_id>/failover", "PUT", status=202)
def failover_amphora(amphora_id: str) -> Response:
    """Replace an amphora."""
    _admin()
    amphora = amphorae.get_amphora(common.engine().sessions, amphora_id)
    lb_id = amphora["loadbalancer_id"]
    if lb_id is None:
        raise ApiError(404, f"Amphora {amphora_id} not found.")
    if common.engine().get_load_balancer(lb_id)["provisioning_status"] in PENDING_STATUSES:
        raise immutable(lb_id)
    common.engine().failover_amphora(amphora_id)
    return common.no_content(202)


@route(blueprint, "/octavia/amphorae/<amphora_id>/config", "PUT", status=202)
def configure_amphora(amphora_id: str) -> Response:
    """Push the controller's agent configuration to an amphora (nothing to change here:
    the local fabric's amphorae get theirs at boot)."""
    _admin()
    amphorae.get_amphora(common.engine().sessions, amphora_id)
    return common.no_content(202)


@route(blueprint, "/octavia/amphorae/<amphora_id>/stats", "GET",
       response=("amphora_stats", AmphoraStats, True))
def amphora_stats(amphora_id: str) -> Response:
    """An amphora's per-listener counters."""
    _admin()
    rows = amphorae.amphora_stats(common.engine().sessions, amphora_id)
    return Response(common.json.dumps({"amphora_stats": [common.dump(AmphoraStats, r)
                                                         for r in rows]}),
                    mimetype="application/json")
