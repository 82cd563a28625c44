"""``/fabric/networks`` and ``/fabric/subnets`` (not Octavia's): the read-only
listing of the ids ``vip_network_id``, ``vip_subnet_id`` and members'
``subnet_id`` accept on the local fabric."""

from __future__ import annotations

from flask import Blueprint, Response

from controller_stub.controller.rest import common, context
from controller_stub.controller.rest.schema import Out, route

blueprint = Blueprint("networks", __name__)


class NetworkResponse(Out):
    id: str
    name: str
    subnets: list[str]


class SubnetResponse(Out):
    id: str
    network_id: str
    name: str
    cidr: str
    ip_version: int
    gateway_ip: str


@route(blueprint, "/fabric/networks", "GET",
       response=("networks", NetworkResponse, True))
def list_networks() -> Response:
    """The local fabric's networks a VIP or a member may use."""
    context.current()
    rows = [n.as_dict() for n in common.backend().networks.networks.values()]
    return common.answer_list("networks", NetworkResponse, rows)


@route(blueprint, "/fabric/subnets", "GET", response=("subnets", SubnetResponse, True))
def list_subnets() -> Response:
    """The local fabric's subnets, with their network ids."""
    context.current()
    rows = [s.as_dict() for s in common.backend().networks.subnets.values()]
    return common.answer_list("subnets", SubnetResponse, rows)
