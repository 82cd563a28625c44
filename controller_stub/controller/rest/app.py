"""The Flask app: every resource blueprint under ``/v2`` and ``/v2.0``, the
version document at ``/``, the OpenAPI document, and Octavia's error bodies.

Octavia serves its ``lbaas`` collections twice, as ``/v2/lbaas/<collection>``
and as ``/v2/<collection>``; :class:`LbaasAlias` maps the second form onto
the first, so both reach the same views (and the OpenAPI document lists each
route once).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, json, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from controller_stub.controller.api import Controller
from controller_stub.controller.errors import ControllerError
from controller_stub.controller.networks import NetworkRegistry
from controller_stub.controller.rest import listing, openapi
from controller_stub.controller.rest.common import Backend
from controller_stub.controller.rest.errors import ApiError, fault
from controller_stub.controller.rest.resources import MODULES
from controller_stub.controller.rest.schema import OPERATIONS

LOG = logging.getLogger("amphora-controller.api")
ROOTS = ("/v2", "/v2.0")
# Octavia's API versions up to the one whose behaviour this API follows
_VERSIONS = (("v2.0", "2016-12-11T00:00:00Z"), ("v2.30", "2024-10-07T00:00:00Z"))


def versions(host_url: str) -> dict[str, Any]:
    base = host_url if host_url.endswith("/") else host_url + "/"
    return {"versions": [
        {"id": vid, "status": "CURRENT" if n == len(_VERSIONS) - 1 else "SUPPORTED",
         "updated": stamp, "links": [{"href": base + "v2", "rel": "self"}]}
        for n, (vid, stamp) in enumerate(_VERSIONS)]}


class LbaasAlias:
    """WSGI middleware: ``/v2[.0]/<collection>...`` -> ``/v2[.0]/lbaas/<collection>...``."""

    def __init__(self, app: Any, collections: Iterable[str]) -> None:
        self.app = app
        names = "|".join(sorted(re.escape(c) for c in set(collections)))
        self.pattern = re.compile(rf"^(/v2(?:\.0)?)/(?:{names})(?=/|$)")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        match = self.pattern.match(path)
        if match:
            root = match.group(1)
            environ["PATH_INFO"] = f"{root}/lbaas{path[len(root):]}"
        return self.app(environ, start_response)


def lbaas_collections() -> set[str]:
    """The first path segment after ``/lbaas/`` of every declared route."""
    return {op.rule.split("/")[2] for op in OPERATIONS if op.rule.startswith("/lbaas/")}


def create_app(controller: Controller, networks: NetworkRegistry | None = None, *,
               base_uri: str | None = None) -> Flask:
    """``base_uri``: the public URL clients use (links are built on it), as
    Octavia's ``api_base_uri``; by default the URL of each request."""
    app = Flask("amphora-controller-api")
    app.config["AMPHORA_BASE_URI"] = base_uri.rstrip("/") if base_uri else None
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False
    app.extensions["amphora"] = Backend(controller, networks or NetworkRegistry({}))
    for root in ROOTS:
        suffix = root.strip("/").replace(".", "_")
        for module in MODULES:
            bp = module.blueprint
            app.register_blueprint(bp, url_prefix=root, name=f"{bp.name}_{suffix}")
    app.wsgi_app = LbaasAlias(app.wsgi_app, lbaas_collections())  # type: ignore[method-assign]

    @app.get("/")
    def version_document() -> Response:
        return Response(json.dumps(versions(listing.public_url("/"))), mimetype="application/json")

    @app.get("/v2")
    @app.get("/v2.0")
    def version_root() -> Response:
        return Response(json.dumps("v2"), mimetype="application/json")

    @app.get("/v2/openapi.json")
    def openapi_document() -> Response:
        return Response(json.dumps(openapi.document()), mimetype="application/json")

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return fault(exc.code, exc.faultstring)

    @app.errorhandler(ControllerError)
    def engine_error(exc: ControllerError) -> Response:
        text = str(exc)
        return fault(exc.code, f"Validation failure: {text}" if exc.code == 400 else text)

    @app.errorhandler(IntegrityError)
    def integrity_error(exc: IntegrityError) -> Response:
        # a concurrent request created the same object first (the checks before
        # the change saw none): Octavia's duplicate-entry conflict
        LOG.info("%s %s: %s", request.method, request.path, exc.orig)
        return fault(409, "Already an entity with that specified id.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return fault(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def server_error(exc: Exception) -> Response:
        LOG.exception("%s %s failed", request.method, request.path)
        return fault(500, "An unknown exception occurred.")

    return app
