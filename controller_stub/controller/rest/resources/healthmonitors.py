"""``/lbaas/healthmonitors``: one monitor per pool."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response
from pydantic import Field

from controller_stub.controller.rest import common, context
from controller_stub.controller.rest.schema import (
    TAGGED_LIST_QUERY,
    Body,
    IdOnly,
    Name,
    Out,
    ProjectId,
    Tags,
    Uuid,
    parse,
    route,
)

blueprint = Blueprint("healthmonitors", __name__)
HmType = Literal["HTTP", "HTTPS", "PING", "TCP", "TLS-HELLO", "UDP-CONNECT", "SCTP"]
HttpMethod = Literal["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT",
                     "TRACE"]
Retries = Field(ge=1, le=10)
Codes = Field(None, pattern=r"^(\d{3}(\s*,\s*\d{3})*)$|^(\d{3}-\d{3})$")


class HealthMonitorSingleCreate(Body):
    name: Name | None = None
    type: HmType
    delay: int = Field(ge=0)
    timeout: int = Field(ge=0)
    max_retries_down: int = Field(3, ge=1, le=10)
    max_retries: int = Retries
    http_method: HttpMethod | None = None
    url_path: str | None = Field(None, pattern=r"^/.*")
    expected_codes: str | None = Codes
    admin_state_up: bool = True
    tags: Tags | None = None
    http_version: Literal[1.0, 1.1] | None = None
    domain_name: str | None = Field(None, min_length=1, max_length=255)


class HealthMonitorPOST(HealthMonitorSingleCreate):
    pool_id: Uuid
    project_id: ProjectId | None = None


class HealthMonitorPUT(Body):
    name: Name | None = None
    delay: int | None = Field(None, ge=0)
    timeout: int | None = Field(None, ge=0)
    max_retries_down: int | None = Field(None, ge=1, le=10)
    max_retries: int | None = Field(None, ge=1, le=10)
    http_method: HttpMethod | None = None
    url_path: str | None = Field(None, pattern=r"^/.*")
    expected_codes: str | None = Codes
    admin_state_up: bool | None = None
    tags: Tags | None = None
    http_version: Literal[1.0, 1.1] | None = None
    domain_name: str | None = Field(None, min_length=1, max_length=255)


class HealthMonitorResponse(Out):
    id: str
    name: str | None = None
    type: str
    delay: int
    timeout: int
    max_retries: int
    max_retries_down: int = 3
    http_method: str | None = None
    url_path: str | None = None
    expected_codes: str | None = None
    admin_state_up: bool = True
    project_id: str | None = None
    pools: list[IdOnly] = []
    provisioning_status: str
    operating_status: str
    created_at: str | None = None
    updated_at: str | None = None
    tags: list[str] = []
    http_version: float | None = None
    domain_name: str | None = None


def monitor_spec(body: Body) -> dict[str, Any]:
    """The engine's spec, with Octavia's HTTP defaults (GET / expecting 200)."""
    spec = body.sent()
    spec.pop("pool_id", None)
    spec.pop("project_id", None)
    spec.setdefault("max_retries_down", 3)
    if spec["type"] in ("HTTP", "HTTPS"):
        spec.setdefault("http_method", "GET")
        spec.setdefault("url_path", "/")
        spec.setdefault("expected_codes", "200")
    return spec


ONE = ("healthmonitor", HealthMonitorResponse, False)


@route(blueprint, "/lbaas/healthmonitors", "GET", query=TAGGED_LIST_QUERY,
       response=("healthmonitors", HealthMonitorResponse, True))
def list_healthmonitors() -> Response:
    """List health monitors."""
    return common.answer_list("healthmonitors", HealthMonitorResponse,
                              common.visible("healthmonitor"),
                              aliases={"pool_id": lambda row: row["pools"][0]["id"]})


@route(blueprint, "/lbaas/healthmonitors", "POST", status=201,
       body=("healthmonitor", HealthMonitorPOST), response=ONE)
def create_healthmonitor() -> Response:
    """Create a health monitor."""
    body = parse(HealthMonitorPOST, "healthmonitor")
    assert isinstance(body, HealthMonitorPOST)
    pool = common.mutable_lb("pool", body.pool_id)
    context.owning_project(body.project_id or pool["project_id"])
    if pool.get("healthmonitor_id"):
        raise common.ApiError(409, "This pool already has a health monitor")
    hm = common.engine().create_health_monitor(body.pool_id, **monitor_spec(body))
    return common.answer("healthmonitor", HealthMonitorResponse, hm, 201)


@route(blueprint, "/lbaas/healthmonitors/<hm_id>", "GET", query=("fields",), response=ONE)
def show_healthmonitor(hm_id: str) -> Response:
    """Show a health monitor."""
    return common.answer("healthmonitor", HealthMonitorResponse,
                         common.owned("healthmonitor", hm_id), fields=True)


@route(blueprint, "/lbaas/healthmonitors/<hm_id>", "PUT",
       body=("healthmonitor", HealthMonitorPUT), response=ONE)
def update_healthmonitor(hm_id: str) -> Response:
    """Update a health monitor."""
    body = parse(HealthMonitorPUT, "healthmonitor")
    common.mutable_lb("healthmonitor", hm_id)
    changes = body.sent()
    hm = common.engine().update_health_monitor(hm_id, **changes)
    return common.answer("healthmonitor", HealthMonitorResponse, hm)


@route(blueprint, "/lbaas/healthmonitors/<hm_id>", "DELETE", status=204)
def delete_healthmonitor(hm_id: str) -> Response:
    """Delete a health monitor."""
    common.mutable_lb("healthmonitor", hm_id)
    common.engine().delete_health_monitor(hm_id)
    return common.no_content()
