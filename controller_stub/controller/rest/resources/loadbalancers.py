"""``/lbaas/loadbalancers``: create (with Octavia's graph of listeners, default
pools, members and monitors), show, list, update, cascade delete, ``status``,
``stats`` and ``failover``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, json, request

from controller_stub.controller.errors import InvalidRequest
from controller_stub.controller.rest import common, context
from controller_stub.controller.rest.errors import ApiError, invalid
from controller_stub.controller.rest.resources import listeners as listener_api
from controller_stub.controller.rest.resources import pools as pool_api
from controller_stub.controller.rest.schema import (
    TAGGED_LIST_QUERY,
    Body,
    IdOnly,
    IPAddress,
    Name,
    ObjectOut,
    Out,
    ProjectId,
    Tags,
    Uuid,
    parse,
    route,
)

blueprint = Blueprint("loadbalancers", __name__)
# Neutron-only features this controller does not have: refused with a 400 when set
_UNSUPPORTED = ("vip_port_id", "vip_qos_policy_id", "vip_sg_ids", "additional_vips", "pools")


class LoadBalancerPOST(Body):
    name: Name | None = None
    description: Name | None = None
    admin_state_up: bool = True
    vip_address: IPAddress | None = None
    vip_port_id: Uuid | None = None
    vip_subnet_id: Uuid | None = None
    vip_network_id: Uuid | None = None
    vip_qos_policy_id: Uuid | None = None
    vip_sg_ids: list[Uuid] | None = None
    additional_vips: list[dict[str, Any]] | None = None
    project_id: ProjectId | None = None
    listeners: list[listener_api.ListenerSingleCreate] = []
    pools: list[pool_api.PoolSingleCreate] = []
    provider: str | None = None
    tags: Tags | None = None
    flavor_id: Uuid | None = None
    availability_zone: Name | None = None


class LoadBalancerPUT(Body):
    name: Name | None = None
    description: Name | None = None
    vip_qos_policy_id: Uuid | None = None
    admin_state_up: bool | None = None
    vip_sg_ids: list[Uuid] | None = None
    tags: Tags | None = None


class LoadBalancerResponse(ObjectOut):
    vip_address: str | None = None
    vip_port_id: str | None = None
    vip_subnet_id: str | None = None
    vip_network_id: str | None = None
    vip_sg_ids: list[str] | None = None
    additional_vips: list[dict[str, Any]] = []
    listeners: list[IdOnly] = []
    pools: list[IdOnly] = []
    provider: str = "amphora"
    flavor_id: str | None = None
    vip_qos_policy_id: str | None = None
    tags: list[str] = []
    availability_zone: str | None = None
    vip_vnic_type: str = "normal"


class LoadBalancerStats(listener_api.ListenerStats):
    pass


class StatusTree(Out):
    statuses: dict[str, Any]


def _shown(lb: dict[str, Any]) -> dict[str, Any]:
    """The engine's network name shown as the registry's network id."""
    return {**lb, "vip_network_id": common.backend().networks.network_id(
        lb.get("vip_network_id"))}


ONE = ("loadbalancer", LoadBalancerResponse, False)
ITEM = "/lbaas/loadbalancers/<lb_id>"


@route(blueprint, "/lbaas/loadbalancers", "GET", query=TAGGED_LIST_QUERY,
       response=("loadbalancers", LoadBalancerResponse, True))
def list_loadbalancers() -> Response:
    """List load balancers."""
    rows = [_shown(lb) for lb in common.visible("loadbalancer")]
    return common.answer_list("loadbalancers", LoadBalancerResponse, rows)


@route(blueprint, "/lbaas/loadbalancers", "POST", status=201,
       body=("loadbalancer", LoadBalancerPOST), response=ONE)
def create_loadbalancer() -> Response:
    """Create a load balancer, optionally with its listeners, pools and members."""
    body = parse(LoadBalancerPOST, "loadbalancer")
    assert isinstance(body, LoadBalancerPOST)
    project = context.owning_project(body.project_id)
    common.refuse_unsupported(body.sent(), _UNSUPPORTED)
    if body.provider not in (None, "amphora", "octavia"):
        raise ApiError(400, f"Provider '{body.provider}' is not enabled.")
    try:
        network, subnet_id = common.backend().networks.resolve_vip(
            network_id=body.vip_network_id, subnet_id=body.vip_subnet_id,
            address=body.vip_address)
    except InvalidRequest as exc:
        raise invalid(str(exc)) from None
    if body.vip_address is not None and any(
            lb["vip_address"] == body.vip_address
            for lb in common.engine().list_objects("loadbalancer")):
        raise ApiError(409, f"IP address {body.vip_address} is already allocated in subnet "
                            f"{subnet_id}.")
    lb = common.engine().create_load_balancer(
        vip_network_id=network, vip_subnet_id=subnet_id, vip_address=body.vip_address,
        name=body.name,
        description=body.description, flavor_id=body.flavor_id,
        availability_zone=body.availability_zone, project_id=project,
        admin_state_up=body.admin_state_up, tags=body.tags,
        listeners=[listener_api.listener_spec(li) for li in body.listeners])
    full = _shown(lb)
    full["listeners"] = [common.dump(listener_api.ListenerResponse,
                                     common.engine().get_object("listener", li["id"]))
                         for li in lb["listeners"]]
    full["pools"] = [common.dump(pool_api.PoolResponse, common.engine().get_object("pool", p["id"]))
                     for p in lb["pools"]]
    body_out = {**common.dump(LoadBalancerResponse, full), "listeners": full["listeners"],
                "pools": full["pools"]}
    return Response(json.dumps({"loadbalancer": body_out}), status=201,
                    mimetype="application/json")


@route(blueprint, ITEM, "GET", query=("fields",), response=ONE)
def show_loadbalancer(lb_id: str) -> Response:
    """Show a load balancer."""
    return common.answer("loadbalancer", LoadBalancerResponse,
                         _shown(common.owned("loadbalancer", lb_id)), fields=True)


@route(blueprint, ITEM, "PUT", body=("loadbalancer", LoadBalancerPUT), response=ONE)
def update_loadbalancer(lb_id: str) -> Response:
    """Update a load balancer's name, description, admin state or tags."""
    body = parse(LoadBalancerPUT, "loadbalancer")
    common.mutable_lb("loadbalancer", lb_id)
    changes = common.refuse_unsupported(body.sent(), _UNSUPPORTED)
    lb = common.engine().update_load_balancer(lb_id, **changes)
    return common.answer("loadbalancer", LoadBalancerResponse, _shown(lb))


@route(blueprint, ITEM, "DELETE", status=204, query=("cascade",))
def delete_loadbalancer(lb_id: str) -> Response:
    """Delete a load balancer (``cascade=true``: with everything on it)."""
    lb = common.mutable_lb("loadbalancer", lb_id)
    cascade = request.args.get("cascade", "false").lower() in ("true", "1", "yes")
    if not cascade and (lb["listeners"] or lb["pools"]):
        raise invalid(f"Cannot delete Load Balancer {lb_id} - it has children")
    common.engine().delete_load_balancer(lb_id, cascade=cascade)
    return common.no_content()


@route(blueprint, f"{ITEM}/status", "GET", response=("statuses", StatusTree, False))
def loadbalancer_status(lb_id: str) -> Response:
    """The status tree of a load balancer and everything on it."""
    common.owned("loadbalancer", lb_id)
    return Response(json.dumps(common.engine().status_tree(lb_id)), status=200,
                    mimetype="application/json")


@route(blueprint, f"{ITEM}/stats", "GET", response=("stats", LoadBalancerStats, False))
def loadbalancer_stats(lb_id: str) -> Response:
    """A load balancer's traffic counters, summed over its listeners."""
    common.owned("loadbalancer", lb_id)
    return common.answer("stats", LoadBalancerStats,
                         common.engine().load_balancer_stats(lb_id))


@route(blueprint, f"{ITEM}/failover", "PUT", status=202)
def failover_loadbalancer(lb_id: str) -> Response:
    """Replace the load balancer's amphorae one at a time."""
    common.mutable_lb("loadbalancer", lb_id)
    common.engine().failover_load_balancer(lb_id)
    return common.no_content(202)
