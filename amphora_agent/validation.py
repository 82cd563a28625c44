"""Validation of everything a request carries, before anything touches disk."""

from __future__ import annotations

import ipaddress
import re
import uuid

from amphora_agent.errors import InvalidRequest

_PEM_FILENAME = re.compile(r"^[A-Za-z0-9._-]{1,200}\.pem$")


def require_uuid(value: str, what: str = "id") -> str:
    """Path ids must be UUIDs: they become directory and file names."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidRequest(f"{what} must be a UUID") from None
    # uuid.UUID accepts braces, urn: prefixes and missing dashes; only the
    # canonical text may name a file, so compare against it.
    if str(parsed) != value.lower():
        raise InvalidRequest(f"{what} must be a UUID in canonical form")
    return str(parsed)


def require_pem_filename(value: str) -> str:
    if not _PEM_FILENAME.fullmatch(value) or ".." in value or value.startswith("."):
        raise InvalidRequest("filename must match ^[A-Za-z0-9._-]+\\.pem$ without '..'")
    return value


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def require_ip(value: str, what: str = "IP address") -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidRequest(f"{what} {value!r} is not a valid IP address") from None


def require_pem(body: bytes, what: str = "body") -> bytes:
    """A PEM upload must at least contain one PEM block and be text.

    The markers must start a line: a file whose markers hide in ``#``
    comments could still be read by HAProxy as a crt-list (certstore.py).
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{what} is not PEM text") from None
    lines = text.splitlines()
    if not (any(line.startswith("-----BEGIN ") for line in lines)
            and any(line.startswith("-----END ") for line in lines)):
        raise InvalidRequest(f"{what} has no PEM block")
    return body
