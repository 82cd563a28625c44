"""``/lbaas/pools/{pool_id}/members``, including the batch ``PUT`` of a pool's members."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from pydantic import Field

from controller_stub.controller.rest import common
from controller_stub.controller.rest.schema import (
    TAGGED_LIST_QUERY,
    Body,
    IPAddress,
    Name,
    Out,
    Port,
    ProjectId,
    Tags,
    Uuid,
    parse,
    route,
    validate,
)

blueprint = Blueprint("members", __name__)
_UNSUPPORTED = ("request_sriov", "vnic_type")


class MemberSingleCreate(Body):
    name: Name | None = None
    admin_state_up: bool = True
    address: IPAddress
    protocol_port: Port
    weight: int = Field(1, ge=0, le=256)
    backup: bool = False
    subnet_id: Uuid | None = None
    monitor_port: Port | None = None
    monitor_address: IPAddress | None = None
    tags: Tags | None = None
    request_sriov: bool = False


class MemberPOST(MemberSingleCreate):
    project_id: ProjectId | None = None


class MemberPUT(Body):
    name: Name | None = None
    admin_state_up: bool | None = None
    weight: int | None = Field(None, ge=0, le=256)
    backup: bool | None = None
    monitor_port: Port | None = None
    monitor_address: IPAddress | None = None
    tags: Tags | None = None


class MembersPUT(Body):
    members: list[MemberPOST]


class MemberResponse(Out):
    id: str
    name: str | None = None
    operating_status: str
    provisioning_status: str
    admin_state_up: bool = True
    address: str
    protocol_port: int
    weight: int = 1
    backup: bool = False
    subnet_id: str | None = None
    project_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    monitor_address: str | None = None
    monitor_port: int | None = None
    tags: list[str] = []
    vnic_type: str = "normal"


def member_spec(body: Body) -> dict[str, Any]:
    spec = common.refuse_unsupported(body.sent(), _UNSUPPORTED)
    spec.pop("project_id", None)
    common.backend().networks.check_subnet(spec.get("subnet_id"))
    return spec


ONE = ("member", MemberResponse, False)
RULE = "/lbaas/pools/<pool_id>/members"


def _member_of(pool_id: str, member_id: str) -> dict[str, Any]:
    common.owned("pool", pool_id)
    member = common.owned("member", member_id)
    if member["pool_id"] != pool_id:
        raise common.not_found("Member", member_id)
    return member


@route(blueprint, RULE, "GET", query=TAGGED_LIST_QUERY, response=("members", MemberResponse, True))
def list_members(pool_id: str) -> Response:
    """List a pool's members."""
    common.owned("pool", pool_id)
    return common.answer_list("members", MemberResponse,
                              common.visible("member", pool_id=pool_id))


@route(blueprint, RULE, "POST", status=201, body=("member", MemberPOST), response=ONE)
def create_member(pool_id: str) -> Response:
    """Create a member."""
    body = parse(MemberPOST, "member")
    common.mutable_lb("pool", pool_id)
    spec = member_spec(body)
    for other in common.engine().list_objects("member", pool_id=pool_id):
        if (other["address"], other["protocol_port"]) == (spec["address"],
                                                          spec["protocol_port"]):
            raise common.ApiError(409, "Another member on this pool is already using ip "
                                       f"{spec['address']} on protocol_port "
                                       f"{spec['protocol_port']}")
    member = common.engine().create_member(pool_id, **spec)
    return common.answer("member", MemberResponse, member, 201)


@route(blueprint, RULE, "PUT", status=202, body=("", MembersPUT),
       query=("additive_only",))
def batch_update_members(pool_id: str) -> Response:
    """Replace a pool's members (``additive_only=true``: add and update only)."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or set(data) != {"members"}:
        raise common.ApiError(400, "Invalid input for field/attribute members. "
                                   "Value: 'None'. Mandatory field missing.")
    body = validate(MembersPUT, data, "")
    assert isinstance(body, MembersPUT)
    common.mutable_lb("pool", pool_id)
    additive = request.args.get("additive_only", "false").lower() in ("true", "1", "yes")
    common.engine().batch_update_members(
        pool_id, [member_spec(m) for m in body.members], additive_only=additive)
    return common.no_content(202)


@route(blueprint, f"{RULE}/<member_id>", "GET", query=("fields",), response=ONE)
def show_member(pool_id: str, member_id: str) -> Response:
    """Show a member."""
    return common.answer("member", MemberResponse, _member_of(pool_id, member_id),
                         fields=True)


@route(blueprint, f"{RULE}/<member_id>", "PUT", body=("member", MemberPUT), response=ONE)
def update_member(pool_id: str, member_id: str) -> Response:
    """Update a member."""
    body = parse(MemberPUT, "member")
    _member_of(pool_id, member_id)
    common.mutable_lb("member", member_id)
    changes = common.refuse_unsupported(body.sent(), _UNSUPPORTED)
    return common.answer("member", MemberResponse,
                         common.engine().update_member(member_id, **changes))


@route(blueprint, f"{RULE}/<member_id>", "DELETE", status=204)
def delete_member(pool_id: str, member_id: str) -> Response:
    """Delete a member."""
    _member_of(pool_id, member_id)
    common.mutable_lb("member", member_id)
    common.engine().delete_member(member_id)
    return common.no_content()
