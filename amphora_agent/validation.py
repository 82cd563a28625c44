"""Validation of everything a request carries, before anything touches disk."""

from __future__ import annotations

import ipaddress
import uuid

from amphora_agent.errors import InvalidRequest
from amphora_contract.api import PEM_FILENAME_RULE, is_pem_filename


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
    if not is_pem_filename(value):
        raise InvalidRequest(f"filename must match {PEM_FILENAME_RULE}")
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
