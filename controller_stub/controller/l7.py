"""L7 policy and rule updates (the creates and deletes are Controller methods)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from controller_stub.controller import models
from controller_stub.controller.api import Controller, l7policy_dict, l7rule_dict
from controller_stub.controller.constants import PENDING_UPDATE
from controller_stub.controller.errors import InvalidRequest
from controller_stub.controller.positions import renumber

_POLICY_OPTIONS = ("redirect_url", "redirect_prefix", "redirect_http_code")
_REDIRECTS = {"REDIRECT_TO_POOL": "redirect_pool_id", "REDIRECT_TO_URL": "redirect_url",
              "REDIRECT_PREFIX": "redirect_prefix"}


def update_l7policy(ctl: Controller, l7policy_id: str, **changes: Any) -> dict[str, Any]:
    lb_id = ctl._lb_of(models.L7Policy, l7policy_id)

    def mutate(session: Session, lb: models.LoadBalancer) -> Any:
        policy = ctl._get(session, models.L7Policy, l7policy_id)
        changes_ = dict(changes)
        if changes_.get("redirect_pool_id"):
            ctl._pool_of(session, lb, changes_["redirect_pool_id"])
        for key in ("name", "description", "admin_state_up", "action", "redirect_pool_id",
                    "tags"):
            if key in changes_:
                setattr(policy, key, changes_.pop(key))
        if "position" in changes_:
            renumber(policy.listener, policy, changes_.pop("position"))
        options = {**policy.options}
        for key in list(changes_):
            if key not in _POLICY_OPTIONS:
                raise InvalidRequest(f"l7policy: unknown attribute {key}")
            options[key] = changes_.pop(key)
        # a new action drops the other actions' targets, as Octavia does
        target = _REDIRECTS.get(policy.action)
        for action, field in _REDIRECTS.items():
            if field != target and action != policy.action:
                if field == "redirect_pool_id":
                    policy.redirect_pool_id = None
                else:
                    options.pop(field, None)
        if policy.action not in ("REDIRECT_TO_URL", "REDIRECT_PREFIX"):
            options.pop("redirect_http_code", None)
        policy.options = options
        policy.provisioning_status = PENDING_UPDATE
        return lambda: l7policy_dict(policy)
    return ctl._change(lb_id, "lb_update", mutate)


def update_l7rule(ctl: Controller, l7rule_id: str, **changes: Any) -> dict[str, Any]:
    lb_id = ctl._lb_of(models.L7Rule, l7rule_id)

    def mutate(session: Session, lb: models.LoadBalancer) -> Any:
        rule = ctl._get(session, models.L7Rule, l7rule_id)
        for key, value in changes.items():
            if key not in ("type", "compare_type", "key", "value", "invert", "admin_state_up",
                           "tags"):
                raise InvalidRequest(f"l7rule: unknown attribute {key}")
            setattr(rule, key, value)
        rule.provisioning_status = PENDING_UPDATE
        return lambda: l7rule_dict(rule)
    return ctl._change(lb_id, "lb_update", mutate)
