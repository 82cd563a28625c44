"""The heartbeat envelope: what an amphora sends and the health manager reads.

A datagram is the zlib-compressed JSON message followed by the hex
HMAC-SHA256 of that compressed payload, keyed with ``heartbeat_key`` (the
layout Octavia's health manager reads, envelope version 3). The agent wraps
(:mod:`amphora_agent.heartbeat` sends); a controller unwraps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zlib
from typing import Any

VERSION = 3
DIGEST_HEX_LEN = 64
MAX_DATAGRAM = 65507
MAX_DECOMPRESSED = 1 << 20


class EnvelopeError(ValueError):
    """A datagram that is not a valid, correctly signed heartbeat."""


def message(amphora_id: str | None, seq: int, listeners: dict[str, Any],
            pools: dict[str, Any]) -> dict[str, Any]:
    """A version-3 heartbeat message (before wrapping)."""
    return {"id": amphora_id, "seq": seq, "ver": VERSION,
            "listeners": listeners, "pools": pools}


def wrap(body: dict[str, Any], key: str) -> bytes:
    payload = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 9)
    digest = hmac.new(key.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    return payload + digest.encode("ascii")


def unwrap(envelope: bytes, key: str) -> dict[str, Any]:
    """Check the HMAC in constant time, then decompress with a size bound."""
    if len(envelope) <= DIGEST_HEX_LEN:
        raise EnvelopeError("datagram too short")
    payload, digest = envelope[:-DIGEST_HEX_LEN], envelope[-DIGEST_HEX_LEN:]
    expected = hmac.new(key.encode("utf-8"), payload, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(digest, expected):
        raise EnvelopeError("HMAC mismatch")
    decompressor = zlib.decompressobj()
    try:
        raw = decompressor.decompress(payload, MAX_DECOMPRESSED)
    except zlib.error as exc:
        raise EnvelopeError(f"not zlib data: {exc}") from None
    if decompressor.unconsumed_tail:
        raise EnvelopeError("payload too large")
    try:
        body = json.loads(raw)
    except ValueError:
        raise EnvelopeError("payload is not JSON") from None
    if not isinstance(body, dict):
        raise EnvelopeError("payload is not a JSON object")
    return body
