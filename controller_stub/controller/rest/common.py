"""What every resource module shares: the engine behind the app, owned-object
lookups with Octavia's 403/404/409, and JSON answers built from the models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, json, request
from pydantic import BaseModel

from controller_stub.controller.api import Controller
from controller_stub.controller.constants import PENDING_STATUSES
from controller_stub.controller.errors import NotFound
from controller_stub.controller.networks import NetworkRegistry
from controller_stub.controller.rest import context, listing
from controller_stub.controller.rest.errors import FORBIDDEN, ApiError, immutable, not_found

LABELS = {"loadbalancer": "Load Balancer", "listener": "Listener", "pool": "Pool",
          "member": "Member", "healthmonitor": "Health Monitor", "l7policy": "L7 Policy",
          "l7rule": "L7 Rule"}


@dataclass
class Backend:
    """The engine the app serves; in ``app.extensions["amphora"]``."""

    controller: Controller
    networks: NetworkRegistry


def backend() -> Backend:
    return current_app.extensions["amphora"]


def engine() -> Controller:
    return backend().controller


def owned(kind: str, object_id: str) -> dict[str, Any]:
    """The object as the engine has it, if it exists (404) and is the caller's (403)."""
    try:
        obj = engine().get_object(kind, object_id)
    except NotFound:
        raise not_found(LABELS[kind], object_id) from None
    context.check_owner(obj.get("project_id"))
    return obj


def lb_id_of(kind: str, obj: dict[str, Any]) -> str:
    if kind == "loadbalancer":
        return obj["id"]
    if kind in ("listener", "pool"):
        return obj["loadbalancers"][0]["id"]
    if kind == "member":
        return lb_id_of("pool", engine().get_object("pool", obj["pool_id"]))
    if kind == "healthmonitor":
        return lb_id_of("pool", engine().get_object("pool", obj["pools"][0]["id"]))
    if kind == "l7policy":
        return lb_id_of("listener", engine().get_object("listener", obj["listener_id"]))
    return lb_id_of("l7policy", engine().get_object("l7policy", obj["l7policy_id"]))


def mutable_lb(kind: str, object_id: str) -> dict[str, Any]:
    """The caller's object whose load balancer is not PENDING_* (409 otherwise)."""
    obj = owned(kind, object_id)
    lb_id = lb_id_of(kind, obj)
    lb = obj if kind == "loadbalancer" else engine().get_load_balancer(lb_id)
    if lb["provisioning_status"] in PENDING_STATUSES:
        raise immutable(lb_id)
    return obj


def visible(kind: str, **where: Any) -> list[dict[str, Any]]:
    """The objects a list shows: the caller's project's, or (admin) any or the one
    named by ``project_id``; another project's asked by a non-admin is a 403."""
    ctx = context.current()
    wanted = request.args.get("project_id")
    if wanted is not None and wanted != ctx.project_id and not ctx.is_admin:
        raise ApiError(403, FORBIDDEN)
    project = wanted if wanted is not None else (None if ctx.is_admin else ctx.project_id)
    rows = engine().list_objects(kind, **where)
    if project is not None or not ctx.is_admin:
        rows = [r for r in rows if r.get("project_id") == project]
    return rows


def dump(model: type[BaseModel], obj: dict[str, Any]) -> dict[str, Any]:
    return model.model_validate(obj).model_dump(mode="json")


def answer(root: str, model: type[BaseModel], obj: dict[str, Any], status: int = 200,
           *, fields: bool = False) -> Response:
    body = dump(model, obj)
    if fields:
        body = listing.select_fields(body, listing.selected_fields())
    return Response(json.dumps({root: body}), status=status, mimetype="application/json")


def answer_list(collection: str, model: type[BaseModel], rows: list[dict[str, Any]],
                aliases: dict[str, Callable[[dict[str, Any]], Any]] | None = None) -> Response:
    """A list answer; ``aliases`` are filters Octavia accepts that are not response
    fields (e.g. a pool's ``loadbalancer_id``), computed from each engine row."""
    dumped = []
    for row in rows:
        item = dump(model, row)
        for name, compute in (aliases or {}).items():
            item[name] = compute(row)
        dumped.append(item)
    body = listing.paginate(collection, dumped, set(model.model_fields) | set(aliases or {}),
                            hidden=set(aliases or {}))
    return Response(json.dumps(body), status=200, mimetype="application/json")


def first_lb(row: dict[str, Any]) -> str:
    return row["loadbalancers"][0]["id"]


def no_content(status: int = 204) -> Response:
    return Response(status=status)


def refuse_unsupported(spec: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``spec`` without ``names``; one of them set to a value (not empty) is a 400,
    so a client never believes a setting took effect that this controller lacks."""
    for name in names:
        value = spec.pop(name, None)
        if value not in (None, [], {}, False):
            raise ApiError(400, f"Validation failure: {name} is not supported by this "
                                "deployment.")
    return spec
