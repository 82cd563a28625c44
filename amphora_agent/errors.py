"""Errors a handler raises; the app turns each into Octavia's JSON error body."""

from __future__ import annotations

from amphora_contract.api import error_body


class ApiError(Exception):
    """An error answered as ``{"message": ..., "details": ...}`` with ``status``."""

    status = 500
    message = "Internal Server Error"

    def __init__(self, details: str = "", *, message: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(details or message or self.message)
        self.details = details
        if message is not None:
            self.message = message
        if status is not None:
            self.status = status

    def body(self) -> dict[str, str]:
        return error_body(self.message, self.details)


class InvalidRequest(ApiError):
    status = 400
    message = "Invalid request"


class NotFound(ApiError):
    status = 404
    message = "Not Found"


class Conflict(ApiError):
    status = 409
    message = "Conflict"


class ServiceUnavailable(ApiError):
    status = 503
    message = "Service Unavailable"
