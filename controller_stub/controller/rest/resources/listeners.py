"""``/lbaas/listeners`` and a listener's ``stats``."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response
from pydantic import Field

from controller_stub.controller.rest import common, context
from controller_stub.controller.rest.resources import pools
from controller_stub.controller.rest.schema import (
    TAGGED_LIST_QUERY,
    Body,
    Cidr,
    IdOnly,
    Name,
    ObjectOut,
    Out,
    Port,
    ProjectId,
    Tags,
    Uuid,
    parse,
    route,
)

blueprint = Blueprint("listeners", __name__)
Protocol = Literal["HTTP", "HTTPS", "TCP", "TERMINATED_HTTPS", "UDP", "SCTP", "PROMETHEUS"]
Timeout = Field(None, ge=0, le=24 * 60 * 60 * 1000)
Ref = Field(None, max_length=255)
_UNSUPPORTED = ("l7policies",)


class _ListenerOptions(Body):
    name: Name | None = None
    description: Name | None = None
    connection_limit: int | None = Field(None, ge=-1)
    default_tls_container_ref: str | None = Ref
    sni_container_refs: list[str] | None = None
    default_pool_id: Uuid | None = None
    insert_headers: dict[str, str] | None = None
    timeout_client_data: int | None = Timeout
    timeout_member_connect: int | None = Timeout
    timeout_member_data: int | None = Timeout
    timeout_tcp_inspect: int | None = Timeout
    tags: Tags | None = None
    client_ca_tls_container_ref: str | None = Ref
    client_authentication: Literal["NONE", "OPTIONAL", "MANDATORY"] | None = None
    client_crl_container_ref: str | None = Ref
    allowed_cidrs: list[Cidr] | None = None
    tls_ciphers: str | None = Field(None, max_length=2048)
    tls_versions: list[str] | None = None
    alpn_protocols: list[str] | None = None
    hsts_max_age: int | None = Field(None, ge=0)
    hsts_include_subdomains: bool | None = None
    hsts_preload: bool | None = None


class ListenerSingleCreate(_ListenerOptions):
    admin_state_up: bool = True
    protocol: Protocol
    protocol_port: Port
    default_pool: pools.PoolSingleCreate | None = None
    l7policies: list[dict[str, Any]] | None = None


class ListenerPOST(ListenerSingleCreate):
    loadbalancer_id: Uuid
    project_id: ProjectId | None = None


class ListenerPUT(_ListenerOptions):
    admin_state_up: bool | None = None


class ListenerResponse(ObjectOut):
    protocol: str
    protocol_port: int
    connection_limit: int = -1
    default_tls_container_ref: str | None = None
    sni_container_refs: list[str] = []
    default_pool_id: str | None = None
    l7policies: list[IdOnly] = []
    insert_headers: dict[str, str] = {}
    loadbalancers: list[IdOnly] = []
    timeout_client_data: int = 50000
    timeout_member_connect: int = 5000
    timeout_member_data: int = 50000
    timeout_tcp_inspect: int = 0
    tags: list[str] = []
    client_ca_tls_container_ref: str | None = None
    client_authentication: str = "NONE"
    client_crl_container_ref: str | None = None
    allowed_cidrs: list[str] | None = None
    tls_ciphers: str | None = None
    tls_versions: list[str] | None = None
    alpn_protocols: list[str] | None = None
    hsts_max_age: int | None = None
    hsts_include_subdomains: bool = False
    hsts_preload: bool = False


class ListenerStats(Out):
    bytes_in: int
    bytes_out: int
    active_connections: int
    total_connections: int
    request_errors: int


def listener_spec(body: Body) -> dict[str, Any]:
    """The engine's spec: only what the client set (Octavia's defaults are the
    renderer's too), an inline default pool included."""
    spec = common.refuse_unsupported(body.sent(), _UNSUPPORTED)
    for key in ("loadbalancer_id", "project_id"):
        spec.pop(key, None)
    if spec.get("connection_limit") == -1:
        spec.pop("connection_limit")
    if getattr(body, "default_pool", None) is not None:
        spec["default_pool"] = pools.pool_spec(body.default_pool)  # type: ignore[attr-defined]
    return spec


ONE = ("listener", ListenerResponse, False)


@route(blueprint, "/lbaas/listeners", "GET", query=TAGGED_LIST_QUERY,
       response=("listeners", ListenerResponse, True))
def list_listeners() -> Response:
    """List listeners."""
    return common.answer_list("listeners", ListenerResponse, common.visible("listener"),
                              aliases={"loadbalancer_id": common.first_lb})


@route(blueprint, "/lbaas/listeners", "POST", status=201, body=("listener", ListenerPOST),
       response=ONE)
def create_listener() -> Response:
    """Create a listener."""
    body = parse(ListenerPOST, "listener")
    assert isinstance(body, ListenerPOST)
    lb = common.mutable_lb("loadbalancer", body.loadbalancer_id)
    context.owning_project(body.project_id or lb["project_id"])
    if body.default_pool is not None:
        raise common.ApiError(400, "Validation failure: default_pool is only accepted in a "
                                   "load balancer's graph create; create the pool with "
                                   "listener_id.")
    for other in common.engine().list_objects("listener",
                                              load_balancer_id=body.loadbalancer_id):
        if other["protocol_port"] == body.protocol_port:
            raise common.ApiError(409, "Another Listener on this Load Balancer is already "
                                       f"using protocol {other['protocol']} and "
                                       f"protocol_port {body.protocol_port}")
    listener = common.engine().create_listener(body.loadbalancer_id, **listener_spec(body))
    return common.answer("listener", ListenerResponse, listener, 201)


@route(blueprint, "/lbaas/listeners/<listener_id>", "GET", query=("fields",), response=ONE)
def show_listener(listener_id: str) -> Response:
    """Show a listener."""
    return common.answer("listener", ListenerResponse, common.owned("listener", listener_id),
                         fields=True)


@route(blueprint, "/lbaas/listeners/<listener_id>", "PUT", body=("listener", ListenerPUT),
       response=ONE)
def update_listener(listener_id: str) -> Response:
    """Update a listener."""
    body = parse(ListenerPUT, "listener")
    common.mutable_lb("listener", listener_id)
    return common.answer("listener", ListenerResponse,
                         common.engine().update_listener(listener_id, **listener_spec(body)))


@route(blueprint, "/lbaas/listeners/<listener_id>", "DELETE", status=204)
def delete_listener(listener_id: str) -> Response:
    """Delete a listener."""
    common.mutable_lb("listener", listener_id)
    common.engine().delete_listener(listener_id)
    return common.no_content()


@route(blueprint, "/lbaas/listeners/<listener_id>/stats", "GET",
       response=("stats", ListenerStats, False))
def listener_stats(listener_id: str) -> Response:
    """A listener's traffic counters."""
    common.owned("listener", listener_id)
    return common.answer("stats", ListenerStats, common.engine().listener_stats(listener_id))
