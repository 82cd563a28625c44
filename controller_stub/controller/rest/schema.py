"""Request and response models, the body parser, and the route table the
OpenAPI document is generated from.

Request bodies are strict (``extra="forbid"``, no coercion of JSON types), so
an unknown field or a wrong type is a 400 with a faultstring in Octavia's
words, before anything reaches the engine. A handler declares its route once
with :func:`route`; that record is both the Flask rule and the OpenAPI entry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from flask import Blueprint, request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from controller_stub.controller.rest.errors import ApiError


def _ip(value: str) -> str:
    ipaddress.ip_address(value)
    return value


def _cidr(value: str) -> str:
    ipaddress.ip_network(value, strict=False)
    return value


Uuid = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")]
IPAddress = Annotated[str, AfterValidator(_ip)]
Cidr = Annotated[str, AfterValidator(_cidr)]
Name = Annotated[str, Field(max_length=255)]
ProjectId = Annotated[str, Field(max_length=36)]
Port = Annotated[int, Field(ge=1, le=65535)]
Tag = Annotated[str, Field(max_length=255)]


def _distinct(tags: list[str]) -> list[str]:
    # a tag is a label: listing one twice means it once (Octavia's tag table is a set)
    return list(dict.fromkeys(tags))


Tags = Annotated[list[Tag], AfterValidator(_distinct)]


class Body(BaseModel):
    """A request body: unknown fields and wrong JSON types are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def sent(self) -> dict[str, Any]:
        """Only the fields the client sent (an update); ``tags: null`` leaves the
        tags as they are, as in Octavia."""
        data = self.model_dump(exclude_unset=True)
        if "tags" in data and data["tags"] is None:
            del data["tags"]
        return data


class Out(BaseModel):
    """A response object: fields the engine has that Octavia does not are dropped."""

    model_config = ConfigDict(extra="ignore")


class IdOnly(Out):
    """A related object, as Octavia lists it: ``{"id": ...}``."""

    id: str


class ObjectOut(Out):
    """The fields every named, owned object with both statuses shares
    (load balancers, listeners, pools, L7 policies)."""

    id: str
    name: str | None = None
    description: str | None = None
    provisioning_status: str
    operating_status: str
    admin_state_up: bool = True
    project_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class Link(BaseModel):
    """One of a list's ``<collection>_links``."""

    href: str
    rel: str


def _faultstring(root: str, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    # an unknown attribute is reported before anything else, as Octavia's WSME does
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(str(p) for p in (root, *err["loc"]) if p != "")
    if err["type"] == "extra_forbidden":
        unknown = [str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden"]
        parent = ".".join(str(p) for p in (root, *err["loc"][:-1]) if p != "")
        word = "attributes" if len(unknown) > 1 else "attribute"
        return f"Unknown {word} for argument {parent}: {', '.join(unknown)}"
    if err["type"] == "missing":
        return f"Invalid input for field/attribute {loc}. Value: 'None'. Mandatory field missing."
    value = err.get("input")
    return f"Invalid input for field/attribute {loc}. Value: '{value}'. {err['msg']}"


def parse(model: type[Body], root: str) -> Body:
    """The request's JSON body ``{root: {...}}`` validated against ``model``."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid input: the request body must be a JSON object.")
    extra = sorted(set(data) - {root})
    if extra:
        word = "attributes" if len(extra) > 1 else "attribute"
        raise ApiError(400, f"Unknown {word} for argument {root}: {', '.join(extra)}")
    if not isinstance(data.get(root), dict):
        raise ApiError(400, f"Invalid input for field/attribute {root}. Value: "
                            f"'{data.get(root)}'. Mandatory field missing.")
    return validate(model, data[root], root)


def validate(model: type[Body], data: Any, root: str) -> Body:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, _faultstring(root, exc)) from None


@dataclass(frozen=True)
class Operation:
    """One served route, as the OpenAPI document describes it."""

    blueprint: str
    rule: str
    method: str
    endpoint: str
    summary: str
    status: int
    body: tuple[str, type[BaseModel]] | None = None  # (root key, model)
    response: tuple[str, type[BaseModel], bool] | None = None  # (root key, model, is list)
    query: tuple[str, ...] = ()


OPERATIONS: list[Operation] = []
LIST_QUERY = ("limit", "marker", "page_reverse", "sort", "sort_key", "sort_dir", "fields")
# the lists of tagged objects also take Octavia's tag filters
TAGGED_LIST_QUERY = (*LIST_QUERY, "tags", "tags-any", "not-tags", "not-tags-any")


def route(bp: Blueprint, rule: str, method: str, *, status: int = 200,
          body: tuple[str, type[BaseModel]] | None = None,
          response: tuple[str, type[BaseModel], bool] | None = None,
          query: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func`` on ``bp`` and record it for the OpenAPI document."""
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        bp.add_url_rule(rule, endpoint=func.__name__, view_func=func, methods=[method])
        OPERATIONS.append(Operation(bp.name, rule, method, func.__name__,
                                    (func.__doc__ or "").strip().splitlines()[0]
                                    if func.__doc__ else func.__name__,
                                    status, body, response, query))
        return func
    return decorate
