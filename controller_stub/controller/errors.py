"""Errors the controller's API raises; the REST layer maps them to Octavia's codes."""

from __future__ import annotations


class ControllerError(Exception):
    """Base class; ``code`` is the HTTP status the REST API answers with."""

    code = 500


class InvalidRequest(ControllerError):
    code = 400


class Unsupported(InvalidRequest):
    """The selected image cannot serve the request; names the option and the version."""


class NotFound(ControllerError):
    code = 404


class Conflict(ControllerError):
    """The object (or its LB) is PENDING_* or otherwise immutable right now."""

    code = 409


class QuotaExceeded(ControllerError):
    """Creating the object would take its project over a quota (Octavia's 403)."""

    code = 403
