"""Who is asking: set in the WSGI environ by the auth middleware (rest/auth.py)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import request

from controller_stub.controller.rest.errors import FORBIDDEN, ApiError

ENVIRON_KEY = "amphora.context"


@dataclass(frozen=True)
class RequestContext:
    project_id: str | None
    is_admin: bool = False


def current() -> RequestContext:
    ctx = request.environ.get(ENVIRON_KEY)
    if ctx is None:
        raise ApiError(401, "The request you have made requires authentication.")
    return ctx


def check_owner(project_id: str | None) -> None:
    """Octavia's policy: another project's object is a 403, not a 404."""
    ctx = current()
    if not ctx.is_admin and project_id != ctx.project_id:
        raise ApiError(403, FORBIDDEN)


def owning_project(requested: str | None) -> str | None:
    """The project a new object belongs to: the caller's (an admin may name another)."""
    ctx = current()
    if requested is not None and requested != ctx.project_id:
        if not ctx.is_admin:
            raise ApiError(403, FORBIDDEN)
        return requested
    return ctx.project_id
