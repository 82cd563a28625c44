"""The agent's REST API as both sides see it: version, error bodies, retry signal.

The agent answers every error as JSON in one of two shapes, and Octavia's
controller relies on both: handler errors are ``{"message", "details"}``,
routing errors (unknown path, wrong method, body too large) are
``{"error", "http_code"}``. A plug request that names an address the amphora
has no NIC for yet is a 404 whose details are :data:`NOT_READY_DETAIL`;
Octavia's controller (and :mod:`controller_stub.client`) retries exactly that
answer, because the NIC may still be hot-plugging.
"""

from __future__ import annotations

import re
from typing import Any

API_VERSION = "1.0"
NOT_READY_DETAIL = "No suitable network interface found"
# Certificate filenames in /1.0/loadbalancer/{lb_id}/certificates/{filename};
# the renderer names the files its configs reference by the same rule.
PEM_FILENAME_RULE = "[A-Za-z0-9._-]{1,200}\\.pem, no '..', not starting with '.'"
_PEM_FILENAME = re.compile(r"[A-Za-z0-9._-]{1,200}\.pem")


def is_pem_filename(name: str) -> bool:
    """Whether ``name`` may name a certificate file of a load balancer."""
    return (_PEM_FILENAME.fullmatch(name) is not None and ".." not in name
            and not name.startswith("."))


def error_body(message: str, details: str = "") -> dict[str, str]:
    """The body of an error a handler raises."""
    return {"message": message, "details": details}


def routing_error_body(error: str, http_code: int) -> dict[str, Any]:
    """The body of an error raised before a handler runs."""
    return {"error": error, "http_code": http_code}


def error_detail(body: Any) -> str | None:
    """The most specific text of an error body of either shape, if any."""
    if not isinstance(body, dict):
        return None
    for key in ("details", "message", "error"):
        value = body.get(key)
        if value:
            return str(value)
    return None


def is_not_ready(status: int, body: Any) -> bool:
    """Whether an answer means "retry later": the not-ready 404.

    A 404 that is not JSON also counts, as it does for Octavia's controller:
    it comes from something in front of the agent, not from the agent.
    """
    if status != 404:
        return False
    if body is None:
        return True
    return isinstance(body, dict) and NOT_READY_DETAIL in str(body.get("details", ""))
