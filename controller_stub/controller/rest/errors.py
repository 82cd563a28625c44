"""Octavia's error body: ``{"faultcode", "faultstring", "debuginfo"}``."""

from __future__ import annotations

from typing import Any

from flask import Response, json

FORBIDDEN = "Policy does not allow this request to be performed."
UNAUTHORIZED = "The request you have made requires authentication."


class ApiError(Exception):
    """An answer other than success; ``code`` and Octavia's ``faultstring``."""

    def __init__(self, code: int, faultstring: str) -> None:
        super().__init__(faultstring)
        self.code, self.faultstring = code, faultstring


def fault_body(code: int, faultstring: str) -> dict[str, Any]:
    return {"faultcode": "Client" if code < 500 else "Server", "faultstring": faultstring,
            "debuginfo": None}


def fault(code: int, faultstring: str) -> Response:
    return Response(json.dumps(fault_body(code, faultstring)), status=code,
                    mimetype="application/json")


def not_found(label: str, object_id: str) -> ApiError:
    """Octavia's NotFound (a 404)."""
    return ApiError(404, f"{label} {object_id} not found.")


def immutable(lb_id: str) -> ApiError:
    return ApiError(409, f"Load Balancer {lb_id} is immutable and cannot be updated.")


def invalid(detail: str) -> ApiError:
    """Octavia's ValidationException."""
    return ApiError(400, f"Validation failure: {detail}")
