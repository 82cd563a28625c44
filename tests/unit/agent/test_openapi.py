"""The OpenAPI document and the served routes describe the same API."""

from __future__ import annotations

import re
from importlib import resources

import yaml
from flask import Flask

METHODS = {"get", "put", "post", "delete", "patch"}


def _spec() -> dict:
    text = resources.files("amphora_agent").joinpath("openapi.yaml").read_text()
    return yaml.safe_load(text)


def _served(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method.lower() in METHODS:
                routes.add((method.lower(), path))
    return routes


def _documented(spec: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, item in spec["paths"].items()
            for method in item if method in METHODS}


def test_every_route_is_documented_and_every_documented_path_is_served(app: Flask) -> None:
    served, documented = _served(app), _documented(_spec())
    assert served - documented == set(), "served but not in openapi.yaml"
    assert documented - served == set(), "in openapi.yaml but not served"


def test_path_parameters_are_declared(app: Flask) -> None:
    spec = _spec()
    params = spec["components"]["parameters"]
    for path, item in spec["paths"].items():
        names = set(re.findall(r"{([a-z_]+)}", path))
        declared = set()
        for ref in item.get("parameters", []):
            declared.add(params[ref["$ref"].rsplit("/", 1)[1]]["name"] if "$ref" in ref
                         else ref["name"])
        for method, operation in item.items():
            if method in METHODS:
                for ref in operation.get("parameters", []):
                    declared.add(params[ref["$ref"].rsplit("/", 1)[1]]["name"]
                                 if "$ref" in ref else ref["name"])
        assert names <= declared, (path, names - declared)


def test_version_discovery_is_exactly_1_0() -> None:
    schema = _spec()["paths"]["/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert schema["schema"]["properties"]["api_version"]["enum"] == ["1.0"]
