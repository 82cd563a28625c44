"""``/lbaas/l7policies`` and their ``/rules``: content switching on a listener."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, json
from pydantic import Field

from controller_stub.controller import l7
from controller_stub.controller.rest import common, context, listing
from controller_stub.controller.rest.errors import ApiError
from controller_stub.controller.rest.schema import (
    TAGGED_LIST_QUERY,
    Body,
    IdOnly,
    Name,
    ObjectOut,
    Out,
    ProjectId,
    Tags,
    Uuid,
    parse,
    route,
)

blueprint = Blueprint("l7policies", __name__)
Action = Literal["REJECT", "REDIRECT_TO_URL", "REDIRECT_TO_POOL", "REDIRECT_PREFIX"]
RedirectCode = Literal[301, 302, 303, 307, 308]
Position = Field(None, ge=1, le=2147483647)
Url = Field(None, pattern=r"^https?://[^\s/$.?#][^\s]*$", max_length=2048)
RuleType = Literal["HOST_NAME", "PATH", "FILE_TYPE", "HEADER", "COOKIE", "SSL_CONN_HAS_CERT",
                   "SSL_VERIFY_RESULT", "SSL_DN_FIELD"]
CompareType = Literal["REGEX", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "EQUAL_TO"]
Text = Field(min_length=1, max_length=255)


class L7RulePOST(Body):
    type: RuleType
    compare_type: CompareType
    key: str | None = Field(None, min_length=1, max_length=255)
    value: str = Text
    invert: bool = False
    admin_state_up: bool = True
    project_id: ProjectId | None = None
    tags: Tags | None = None


class L7RulePUT(Body):
    type: RuleType | None = None
    compare_type: CompareType | None = None
    key: str | None = Field(None, min_length=1, max_length=255)
    value: str | None = Field(None, min_length=1, max_length=255)
    invert: bool | None = None
    admin_state_up: bool | None = None
    tags: Tags | None = None


class L7PolicyPOST(Body):
    name: Name | None = None
    description: Name | None = None
    admin_state_up: bool = True
    project_id: ProjectId | None = None
    action: Action
    redirect_pool_id: Uuid | None = None
    redirect_url: str | None = Url
    redirect_prefix: str | None = Url
    position: int | None = Position
    listener_id: Uuid
    rules: list[L7RulePOST] | None = None
    tags: Tags | None = None
    redirect_http_code: RedirectCode | None = None


class L7PolicyPUT(Body):
    name: Name | None = None
    description: Name | None = None
    admin_state_up: bool | None = None
    action: Action | None = None
    redirect_pool_id: Uuid | None = None
    redirect_url: str | None = Url
    redirect_prefix: str | None = Url
    position: int | None = Position
    tags: Tags | None = None
    redirect_http_code: RedirectCode | None = None


class L7RuleResponse(Out):
    id: str
    type: str
    compare_type: str
    key: str | None = None
    value: str
    invert: bool = False
    provisioning_status: str
    operating_status: str
    created_at: str | None = None
    updated_at: str | None = None
    project_id: str | None = None
    admin_state_up: bool = True
    tags: list[str] = []


class L7PolicyResponse(ObjectOut):
    action: str
    listener_id: str
    redirect_pool_id: str | None = None
    redirect_url: str | None = None
    redirect_prefix: str | None = None
    position: int
    rules: list[IdOnly] = []
    tags: list[str] = []
    redirect_http_code: int | None = None


def sanitize(spec: dict[str, Any], create: bool) -> dict[str, Any]:
    """Octavia's l7policy argument rules, in its order: the action clears the targets
    it does not use and needs its own; a target then implies its action and clears the
    others; URL and prefix redirects default to HTTP 302."""
    def bad(msg: str) -> ApiError:
        return ApiError(400, f"Invalid L7 Policy arguments: {msg}")
    action = spec.get("action")
    if action == "REJECT":
        spec.update(redirect_url=None, redirect_pool_id=None)
    elif action == "REDIRECT_TO_URL":
        if not spec.get("redirect_url"):
            raise bad("redirect_url must not be None")
        spec["redirect_pool_id"] = None
    elif action == "REDIRECT_TO_POOL":
        if not spec.get("redirect_pool_id"):
            raise bad("redirect_pool_id or redirect_pool must not be None")
        spec["redirect_url"] = None
    elif action == "REDIRECT_PREFIX" and not spec.get("redirect_prefix"):
        raise bad("redirect_prefix must not be None")
    if spec.get("redirect_pool_id") and (spec.get("redirect_url")
                                         or spec.get("redirect_prefix")):
        raise bad("Cannot specify redirect_pool_id and redirect_url or redirect_prefix at "
                  "the same time")
    if spec.get("redirect_pool_id"):
        spec.update(action="REDIRECT_TO_POOL", redirect_url=None, redirect_prefix=None,
                    redirect_http_code=None)
    for target, implied, others in (
            ("redirect_url", "REDIRECT_TO_URL", ("redirect_pool_id", "redirect_prefix")),
            ("redirect_prefix", "REDIRECT_PREFIX", ("redirect_pool_id", "redirect_url"))):
        if spec.get(target):
            spec.update(dict.fromkeys(others), action=implied)
            if not spec.get("redirect_http_code"):
                spec["redirect_http_code"] = 302
    if not create and not spec:
        raise bad("Invalid update options")
    return {k: v for k, v in spec.items() if v is not None} if create else spec


def _rule_spec(rule: dict[str, Any]) -> dict[str, Any]:
    rule = {k: v for k, v in rule.items() if v is not None}
    rule.pop("project_id", None)
    if rule["type"] in ("HEADER", "COOKIE", "SSL_DN_FIELD") and not rule.get("key"):
        raise ApiError(400, "Validation failure: L7 rule of this type requires a key")
    return {k: v for k, v in rule.items() if v is not None}


ONE = ("l7policy", L7PolicyResponse, False)
ONE_RULE = ("rule", L7RuleResponse, False)


@route(blueprint, "/lbaas/l7policies", "GET", query=TAGGED_LIST_QUERY,
       response=("l7policies", L7PolicyResponse, True))
def list_l7policies() -> Response:
    """List L7 policies."""
    return common.answer_list("l7policies", L7PolicyResponse, common.visible("l7policy"))


@route(blueprint, "/lbaas/l7policies", "POST", status=201,
       body=("l7policy", L7PolicyPOST), response=ONE)
def create_l7policy() -> Response:
    """Create an L7 policy."""
    body = parse(L7PolicyPOST, "l7policy")
    assert isinstance(body, L7PolicyPOST)
    listener = common.mutable_lb("listener", body.listener_id)
    context.owning_project(body.project_id or listener["project_id"])
    spec = body.sent()
    for key in ("listener_id", "project_id"):
        spec.pop(key, None)
    spec = sanitize(spec, create=True)
    spec["rules"] = [_rule_spec(r.model_dump()) for r in body.rules or []]
    policy = common.engine().create_l7policy(body.listener_id, **spec)
    return common.answer("l7policy", L7PolicyResponse, policy, 201)


@route(blueprint, "/lbaas/l7policies/<policy_id>", "GET", query=("fields",), response=ONE)
def show_l7policy(policy_id: str) -> Response:
    """Show an L7 policy."""
    return common.answer("l7policy", L7PolicyResponse, common.owned("l7policy", policy_id),
                         fields=True)


@route(blueprint, "/lbaas/l7policies/<policy_id>", "PUT",
       body=("l7policy", L7PolicyPUT), response=ONE)
def update_l7policy(policy_id: str) -> Response:
    """Update an L7 policy."""
    body = parse(L7PolicyPUT, "l7policy")
    common.mutable_lb("l7policy", policy_id)
    changes = body.sent()
    if changes or not body.model_fields_set:  # (``tags: null`` alone is a valid no-op)
        changes = sanitize(changes, create=False)
    policy = l7.update_l7policy(common.engine(), policy_id, **changes)
    return common.answer("l7policy", L7PolicyResponse, policy)


@route(blueprint, "/lbaas/l7policies/<policy_id>", "DELETE", status=204)
def delete_l7policy(policy_id: str) -> Response:
    """Delete an L7 policy and its rules."""
    common.mutable_lb("l7policy", policy_id)
    common.engine().delete_l7policy(policy_id)
    return common.no_content()


def _rule_of(policy_id: str, rule_id: str) -> dict[str, Any]:
    common.owned("l7policy", policy_id)
    rule = common.owned("l7rule", rule_id)
    if rule.get("l7policy_id") != policy_id:
        raise ApiError(404, f"L7 Rule {rule_id} not found.")
    return rule


@route(blueprint, "/lbaas/l7policies/<policy_id>/rules", "GET", query=TAGGED_LIST_QUERY,
       response=("rules", L7RuleResponse, True))
def list_l7rules(policy_id: str) -> Response:
    """List an L7 policy's rules."""
    common.owned("l7policy", policy_id)
    # openstacksdk sends l7policy_id as a filter, as Octavia accepts; it is not shown
    rows = [{**common.dump(L7RuleResponse, r), "l7policy_id": policy_id}
            for r in common.visible("l7rule", l7policy_id=policy_id)]
    body = listing.paginate("rules", rows, {*L7RuleResponse.model_fields, "l7policy_id"})
    for row in body["rules"]:
        row.pop("l7policy_id", None)
    return Response(json.dumps(body), mimetype="application/json")


@route(blueprint, "/lbaas/l7policies/<policy_id>/rules", "POST", status=201,
       body=("rule", L7RulePOST), response=ONE_RULE)
def create_l7rule(policy_id: str) -> Response:
    """Create an L7 rule."""
    body = parse(L7RulePOST, "rule")
    policy = common.mutable_lb("l7policy", policy_id)
    assert isinstance(body, L7RulePOST)
    context.owning_project(body.project_id or policy["project_id"])
    rule = common.engine().create_l7rule(policy_id, **_rule_spec(body.model_dump()))
    return common.answer("rule", L7RuleResponse, rule, 201)


@route(blueprint, "/lbaas/l7policies/<policy_id>/rules/<rule_id>", "GET", query=("fields",),
       response=ONE_RULE)
def show_l7rule(policy_id: str, rule_id: str) -> Response:
    """Show an L7 rule."""
    return common.answer("rule", L7RuleResponse, _rule_of(policy_id, rule_id), fields=True)


@route(blueprint, "/lbaas/l7policies/<policy_id>/rules/<rule_id>", "PUT",
       body=("rule", L7RulePUT), response=ONE_RULE)
def update_l7rule(policy_id: str, rule_id: str) -> Response:
    """Update an L7 rule."""
    body = parse(L7RulePUT, "rule")
    _rule_of(policy_id, rule_id)
    common.mutable_lb("l7rule", rule_id)
    changes = body.sent()
    rule = l7.update_l7rule(common.engine(), rule_id, **changes)
    return common.answer("rule", L7RuleResponse, rule)


@route(blueprint, "/lbaas/l7policies/<policy_id>/rules/<rule_id>", "DELETE", status=204)
def delete_l7rule(policy_id: str, rule_id: str) -> Response:
    """Delete an L7 rule."""
    _rule_of(policy_id, rule_id)
    common.mutable_lb("l7rule", rule_id)
    common.engine().delete_l7rule(rule_id)
    return common.no_content()
