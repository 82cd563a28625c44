"""The OpenAPI 3.1 document, generated from the routes' pydantic models
(:data:`~controller_stub.controller.rest.schema.OPERATIONS`)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from controller_stub.controller.rest.schema import OPERATIONS, Link

_REF = "#/components/schemas/{model}"


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    spec = model.model_json_schema(ref_template=_REF)
    for name, sub in spec.pop("$defs", {}).items():
        schemas[name] = sub
    schemas[model.__name__] = spec
    return {"$ref": _REF.format(model=model.__name__)}


def openapi_path(rule: str) -> str:
    """``/lbaas/pools/<pool_id>`` -> ``/lbaas/pools/{pool_id}``."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def document(root: str = "/v2") -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        path = root + openapi_path(op.rule)
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"{(\w+)}", path)]
        params += [{"name": name, "in": "query", "required": False,
                    "schema": {"type": "string"}} for name in op.query]
        entry: dict[str, Any] = {"operationId": f"{op.blueprint}.{op.endpoint}",
                                 "summary": op.summary, "parameters": params}
        if op.body is not None:
            key, model = op.body
            ref = _schema(model, schemas)
            content = ref if key == "" else {
                "type": "object", "required": [key], "additionalProperties": False,
                "properties": {key: ref}}
            entry["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": content}}}
        fault = {"description": "Octavia's error body", "content": {"application/json": {
            "schema": {"$ref": _REF.format(model="Fault")}}}}
        responses: dict[str, Any] = {"400": fault, "401": fault, "403": fault, "404": fault,
                                     "409": fault}
        if op.response is not None:
            key, model, many = op.response
            ref = _schema(model, schemas)
            props: dict[str, Any] = {key: {"type": "array", "items": ref} if many else ref}
            if many:
                props[f"{key}_links"] = {"type": "array", "items": {
                    "$ref": _REF.format(model="Link")}}
            responses[str(op.status)] = {"description": "OK", "content": {"application/json": {
                "schema": {"type": "object", "properties": props}}}}
        else:
            responses[str(op.status)] = {"description": "Accepted" if op.status == 202
                                         else "No content"}
        entry["responses"] = responses
        paths.setdefault(path, {})[op.method.lower()] = entry
    schemas["Fault"] = {"type": "object", "required": ["faultcode", "faultstring"],
                        "properties": {"faultcode": {"enum": ["Client", "Server"]},
                                       "faultstring": {"type": "string"},
                                       "debuginfo": {"type": ["string", "null"]}}}
    schemas["Link"] = Link.model_json_schema()
    return {"openapi": "3.1.0",
            "info": {"title": "Amphora controller: Octavia load-balancer API v2",
                     "version": "2.30"},
            "paths": paths, "components": {"schemas": schemas}}
