"""Who is asking, as WSGI middleware in front of the app (docs/api.md):

- ``noauth``: loopback only (config refuses any other bind); the project from
  ``X-Project-Id`` or ``[api] default_project``, admin with ``X-Roles: admin``.
- ``static``: bearer tokens from a 0600 file, each mapped to a project and
  optionally ``admin``; a request without a valid token is a 401.
- ``keystone``: keystonemiddleware's ``auth_token`` configured from
  ``[keystone_authtoken]`` as in Octavia; its verified headers name the project.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import json

from controller_stub.controller.rest.context import ENVIRON_KEY, RequestContext
from controller_stub.controller.rest.errors import UNAUTHORIZED, fault_body

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_PROJECT_RE = re.compile(r"[A-Za-z0-9_.:-]{1,36}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_.~+/=-]{16,512}")
STRATEGIES = ("noauth", "static", "keystone")
NOAUTH_PATHS = ("/",)


def _reject(start_response: Callable[..., Any], code: int, text: str) -> list[bytes]:
    body = json.dumps(fault_body(code, text)).encode()
    reason = {400: "Bad Request", 401: "Unauthorized"}[code]
    start_response(f"{code} {reason}", [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(body)))]
                   + ([("WWW-Authenticate", 'Bearer realm="amphora"')] if code == 401 else []))
    return [body]


def _roles(environ: dict[str, Any]) -> set[str]:
    return {r.strip().lower() for r in environ.get("HTTP_X_ROLES", "").split(",") if r.strip()}


def noauth(app: WsgiApp, default_project: str | None) -> WsgiApp:
    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        project = environ.get("HTTP_X_PROJECT_ID") or default_project
        if project is not None and not _PROJECT_RE.fullmatch(project):
            return _reject(start_response, 400, "X-Project-Id: 1-36 characters of "
                                                "A-Z a-z 0-9 _ . : -")
        environ[ENVIRON_KEY] = RequestContext(project, "admin" in _roles(environ))
        return app(environ, start_response)
    return middleware


def load_tokens(path: str | os.PathLike[str]) -> dict[str, RequestContext]:
    """``TOKEN PROJECT [admin]`` per line (``#`` comments); the file must be a
    regular file of mode 0600 (or stricter), else it is refused."""
    file = Path(path)
    info = file.stat()
    if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
        raise ValueError(f"[api] static_tokens_file {file}: must be a regular file of mode "
                         f"0600 (is {stat.S_IMODE(info.st_mode):04o})")
    tokens: dict[str, RequestContext] = {}
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) not in (2, 3) or (len(words) == 3 and words[2] != "admin") \
                or not _TOKEN_RE.fullmatch(words[0]) or not _PROJECT_RE.fullmatch(words[1]):
            raise ValueError(f"[api] static_tokens_file {file}, line {number}: expected "
                             "'TOKEN PROJECT [admin]' (token: 16-512 characters)")
        tokens[_digest(words[0])] = RequestContext(words[1], len(words) == 3)
    if not tokens:
        raise ValueError(f"[api] static_tokens_file {file}: no tokens")
    return tokens


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def static(app: WsgiApp, tokens: dict[str, RequestContext]) -> WsgiApp:
    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        header = environ.get("HTTP_AUTHORIZATION", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else \
            environ.get("HTTP_X_AUTH_TOKEN", "")
        ctx = tokens.get(_digest(token)) if token else None
        if ctx is None:
            return _reject(start_response, 401, UNAUTHORIZED)
        environ[ENVIRON_KEY] = ctx
        return app(environ, start_response)
    return middleware


def keystone(app: WsgiApp, options: dict[str, str]) -> WsgiApp:
    from keystonemiddleware import auth_token

    def confirmed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
            return _reject(start_response, 401, UNAUTHORIZED)
        roles = _roles(environ)
        environ[ENVIRON_KEY] = RequestContext(environ.get("HTTP_X_PROJECT_ID"),
                                              "admin" in roles)
        return app(environ, start_response)
    return auth_token.AuthProtocol(confirmed, {**options, "delay_auth_decision": "false"})


def skipping(app: WsgiApp, authenticated: WsgiApp) -> WsgiApp:
    """Octavia's SkippingAuthProtocol: the version document (``GET /``, what
    clients discover the API with before they send a token) needs no token."""
    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") in NOAUTH_PATHS:
            return app(environ, start_response)
        return authenticated(environ, start_response)
    return middleware


def wrap(app: WsgiApp, strategy: str, *, default_project: str | None = None,
         tokens: dict[str, RequestContext] | None = None,
         keystone_options: dict[str, str] | None = None) -> WsgiApp:
    if strategy == "noauth":
        return noauth(app, default_project)
    if strategy == "static":
        return skipping(app, static(app, tokens or {}))
    if strategy == "keystone":
        return skipping(app, keystone(app, keystone_options or {}))
    raise ValueError(f"[api] auth_strategy: one of {', '.join(STRATEGIES)}")
