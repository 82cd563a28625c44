"""``/lbaas/pools``: on a load balancer, or as a listener's default pool."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response
from pydantic import Field

from controller_stub.controller.rest import common, context
from controller_stub.controller.rest.errors import invalid
from controller_stub.controller.rest.resources import healthmonitors
from controller_stub.controller.rest.resources import members as member_api
from controller_stub.controller.rest.schema import (
    TAGGED_LIST_QUERY,
    Body,
    IdOnly,
    IPAddress,
    Name,
    ObjectOut,
    ProjectId,
    Tags,
    Uuid,
    parse,
    route,
)

blueprint = Blueprint("pools", __name__)
PoolProtocol = Literal["HTTP", "HTTPS", "PROXY", "PROXYV2", "TCP", "UDP", "SCTP"]
Algorithm = Literal["ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP", "SOURCE_IP_PORT"]
Ref = Field(None, max_length=255)


class SessionPersistence(Body):
    type: Literal["SOURCE_IP", "HTTP_COOKIE", "APP_COOKIE"]
    cookie_name: str | None = Field(None, max_length=255, pattern=r"^[\x21-\x7e]+$")
    persistence_timeout: int | None = None
    persistence_granularity: IPAddress | None = None


class _PoolOptions(Body):
    name: Name | None = None
    description: Name | None = None
    session_persistence: SessionPersistence | None = None
    tags: Tags | None = None
    tls_container_ref: str | None = Ref
    ca_tls_container_ref: str | None = Ref
    crl_container_ref: str | None = Ref
    tls_ciphers: str | None = Field(None, max_length=2048)
    tls_versions: list[str] | None = None
    alpn_protocols: list[str] | None = None


class PoolSingleCreate(_PoolOptions):
    admin_state_up: bool = True
    protocol: PoolProtocol
    lb_algorithm: Algorithm
    healthmonitor: healthmonitors.HealthMonitorSingleCreate | None = None
    members: list[member_api.MemberSingleCreate] | None = None
    tls_enabled: bool = False


class PoolPOST(PoolSingleCreate):
    listener_id: Uuid | None = None
    loadbalancer_id: Uuid | None = None
    project_id: ProjectId | None = None


class PoolPUT(_PoolOptions):
    admin_state_up: bool | None = None
    lb_algorithm: Algorithm | None = None
    tls_enabled: bool | None = None


class PoolResponse(ObjectOut):
    protocol: str
    lb_algorithm: str
    session_persistence: dict[str, Any] | None = None
    loadbalancers: list[IdOnly] = []
    listeners: list[IdOnly] = []
    healthmonitor_id: str | None = None
    members: list[IdOnly] = []
    tags: list[str] = []
    tls_container_ref: str | None = None
    ca_tls_container_ref: str | None = None
    crl_container_ref: str | None = None
    tls_enabled: bool = False
    tls_ciphers: str | None = None
    tls_versions: list[str] | None = None
    alpn_protocols: list[str] | None = None


def pool_spec(body: Body) -> dict[str, Any]:
    """The engine's spec of a pool, its inline members and monitor included."""
    spec = body.sent()
    for key in ("listener_id", "loadbalancer_id", "project_id"):
        spec.pop(key, None)
    if spec.get("session_persistence") is not None:
        spec["session_persistence"] = {k: v for k, v in spec["session_persistence"].items()
                                       if v is not None}
    if getattr(body, "members", None):
        spec["members"] = [member_api.member_spec(m) for m in body.members]  # type: ignore[attr-defined]
    if getattr(body, "healthmonitor", None) is not None:
        spec["healthmonitor"] = healthmonitors.monitor_spec(body.healthmonitor)  # type: ignore[attr-defined]
    return spec


ONE = ("pool", PoolResponse, False)


@route(blueprint, "/lbaas/pools", "GET", query=TAGGED_LIST_QUERY,
       response=("pools", PoolResponse, True))
def list_pools() -> Response:
    """List pools."""
    return common.answer_list("pools", PoolResponse, common.visible("pool"),
                              aliases={"loadbalancer_id": common.first_lb})


@route(blueprint, "/lbaas/pools", "POST", status=201, body=("pool", PoolPOST), response=ONE)
def create_pool() -> Response:
    """Create a pool."""
    body = parse(PoolPOST, "pool")
    assert isinstance(body, PoolPOST)
    if body.listener_id is None and body.loadbalancer_id is None:
        raise invalid("Either listener_id or loadbalancer_id must be specified.")
    if body.listener_id is not None:
        listener = common.mutable_lb("listener", body.listener_id)
        lb_id = listener["loadbalancers"][0]["id"]
        if body.loadbalancer_id is not None and body.loadbalancer_id != lb_id:
            raise invalid(f"Listener {body.listener_id} is not on load balancer "
                          f"{body.loadbalancer_id}.")
        if listener.get("default_pool_id"):
            raise common.ApiError(409, f"Listener {body.listener_id} already has a "
                                       "default pool.")
    else:
        lb_id = body.loadbalancer_id  # type: ignore[assignment]
        common.mutable_lb("loadbalancer", lb_id)
    context.owning_project(body.project_id or common.engine().project_of("loadbalancer",
                                                                         lb_id))
    pool = common.engine().create_pool(lb_id if body.listener_id is None else None,
                                       listener_id=body.listener_id, **pool_spec(body))
    return common.answer("pool", PoolResponse, pool, 201)


@route(blueprint, "/lbaas/pools/<pool_id>", "GET", query=("fields",), response=ONE)
def show_pool(pool_id: str) -> Response:
    """Show a pool."""
    return common.answer("pool", PoolResponse, common.owned("pool", pool_id), fields=True)


@route(blueprint, "/lbaas/pools/<pool_id>", "PUT", body=("pool", PoolPUT), response=ONE)
def update_pool(pool_id: str) -> Response:
    """Update a pool."""
    body = parse(PoolPUT, "pool")
    common.mutable_lb("pool", pool_id)
    return common.answer("pool", PoolResponse,
                         common.engine().update_pool(pool_id, **pool_spec(body)))


@route(blueprint, "/lbaas/pools/<pool_id>", "DELETE", status=204)
def delete_pool(pool_id: str) -> Response:
    """Delete a pool, its members and its monitor."""
    common.mutable_lb("pool", pool_id)
    common.engine().delete_pool(pool_id)
    return common.no_content()
