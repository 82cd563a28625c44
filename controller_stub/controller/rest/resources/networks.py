"""``/networks`` and ``/subnets``: a read-only, Neutron-shaped listing of the
local fabric's networks and subnets (not part of Octavia's API), so
``vip_network_id``, ``vip_subnet_id`` and members' ``subnet_id`` have ids a
client can look up, and clients that resolve them through a network
endpoint (the ``openstack`` CLI does) find them here."""

from __future__ import annotations

from flask import Blueprint, Response

from controller_stub.controller.rest import common, context
from controller_stub.controller.rest.schema import LIST_QUERY, Out, route

blueprint = Blueprint("networks", __name__)


class NetworkResponse(Out):
    id: str
    name: str
    subnets: list[str]
    status: str = "ACTIVE"
    admin_state_up: bool = True
    shared: bool = True


class SubnetResponse(Out):
    id: str
    network_id: str
    name: str
    cidr: str
    ip_version: int
    gateway_ip: str


def _networks() -> list[dict]:
    return [n.as_dict() for n in common.backend().networks.networks.values()]


def _subnets() -> list[dict]:
    return [s.as_dict() for s in common.backend().networks.subnets.values()]


def _one(root: str, model: type[Out], rows: list[dict], object_id: str) -> Response:
    context.current()
    row = next((r for r in rows if r["id"] == object_id), None)
    if row is None:
        raise common.not_found(root.capitalize(), object_id)
    return common.answer(root, model, row)


@route(blueprint, "/networks", "GET", query=LIST_QUERY,
       response=("networks", NetworkResponse, True))
def list_networks() -> Response:
    """The local fabric's networks a VIP or a member may use."""
    context.current()
    return common.answer_list("networks", NetworkResponse, _networks())


@route(blueprint, "/networks/<network_id>", "GET", response=("network", NetworkResponse, False))
def show_network(network_id: str) -> Response:
    """One network."""
    return _one("network", NetworkResponse, _networks(), network_id)


@route(blueprint, "/subnets", "GET", query=LIST_QUERY,
       response=("subnets", SubnetResponse, True))
def list_subnets() -> Response:
    """The local fabric's subnets, with their network ids."""
    context.current()
    return common.answer_list("subnets", SubnetResponse, _subnets())


@route(blueprint, "/subnets/<subnet_id>", "GET", response=("subnet", SubnetResponse, False))
def show_subnet(subnet_id: str) -> Response:
    """One subnet."""
    return _one("subnet", SubnetResponse, _subnets(), subnet_id)
