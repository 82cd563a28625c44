"""``/lbaas/quotas``: per-project limits (admin to change, a project may read its own)."""

from __future__ import annotations

from flask import Blueprint, Response, json, request
from pydantic import Field

from controller_stub.controller import quotas
from controller_stub.controller.rest import common, context
from controller_stub.controller.rest.errors import FORBIDDEN, ApiError
from controller_stub.controller.rest.schema import LIST_QUERY, Body, Out, parse, route

blueprint = Blueprint("quotas", __name__)
Limit = Field(None, ge=quotas.UNLIMITED, le=quotas.MAX_QUOTA)


class QuotaPUT(Body):
    loadbalancer: int | None = Limit
    load_balancer: int | None = Limit  # deprecated spelling, still accepted
    listener: int | None = Limit
    member: int | None = Limit
    pool: int | None = Limit
    healthmonitor: int | None = Limit
    health_monitor: int | None = Limit  # deprecated spelling, still accepted
    l7policy: int | None = Limit
    l7rule: int | None = Limit


class QuotaResponse(Out):
    project_id: str | None = None
    loadbalancer: int
    load_balancer: int
    listener: int
    member: int
    pool: int
    healthmonitor: int
    health_monitor: int
    l7policy: int
    l7rule: int


ONE = ("quota", QuotaResponse, False)


def _reader(project_id: str) -> None:
    ctx = context.current()
    if not ctx.is_admin and ctx.project_id != project_id:
        raise ApiError(403, FORBIDDEN)


def _admin() -> None:
    if not context.current().is_admin:
        raise ApiError(403, FORBIDDEN)


def _defaults() -> dict[str, int]:
    return common.engine().quota_defaults


@route(blueprint, "/lbaas/quotas", "GET", query=(*LIST_QUERY, "project_id"),
       response=("quotas", QuotaResponse, True))
def list_quotas() -> Response:
    """List the projects' quotas that differ from the defaults."""
    ctx = context.current()
    wanted = request.args.get("project_id")
    if not ctx.is_admin:
        if wanted is not None and wanted != ctx.project_id:
            raise ApiError(403, FORBIDDEN)
        wanted = ctx.project_id
    rows = quotas.list_custom(common.engine().sessions, _defaults(), wanted)
    for row in rows:
        row["id"] = row["project_id"]  # the pagination marker
    return common.answer_list("quotas", QuotaResponse, rows)


@route(blueprint, "/lbaas/quotas/defaults", "GET", response=ONE)
def show_quota_defaults() -> Response:
    """Show the default quotas."""
    context.current()
    body = {"quota": common.dump(QuotaResponse, quotas.as_api(None, _defaults()))}
    body["quota"].pop("project_id", None)
    return Response(json.dumps(body), mimetype="application/json")


@route(blueprint, "/lbaas/quotas/<project_id>", "GET", response=ONE)
def show_quota(project_id: str) -> Response:
    """Show a project's quotas."""
    _reader(project_id)
    return common.answer("quota", QuotaResponse,
                         quotas.get(common.engine().sessions, project_id, _defaults()))


@route(blueprint, "/lbaas/quotas/<project_id>/default", "GET", response=ONE)
def show_project_quota_defaults(project_id: str) -> Response:
    """Show the defaults a project gets."""
    _reader(project_id)
    return common.answer("quota", QuotaResponse, quotas.as_api(project_id, _defaults()))


@route(blueprint, "/lbaas/quotas/<project_id>", "PUT", status=202, body=("quota", QuotaPUT),
       response=ONE)
def update_quota(project_id: str) -> Response:
    """Set some or all of a project's quotas."""
    body = parse(QuotaPUT, "quota")
    _admin()
    row = quotas.update(common.engine().sessions, project_id, body.sent(), _defaults())
    return common.answer("quota", QuotaResponse, row, 202)


@route(blueprint, "/lbaas/quotas/<project_id>", "DELETE", status=202)
def reset_quota(project_id: str) -> Response:
    """Reset a project's quotas to the defaults."""
    _admin()
    quotas.reset(common.engine().sessions, project_id)
    return common.no_content(202)
