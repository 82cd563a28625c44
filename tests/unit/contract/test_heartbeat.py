from __future__ import annotations

import hashlib
import hmac
import json
import zlib

import pytest

from amphora_contract import heartbeat


def test_envelope_is_octavia_v3() -> None:
    message = {"id": "a", "seq": 7, "ver": 3, "listeners": {}, "pools": {}}
    envelope = heartbeat.wrap(message, "secret")
    payload, digest = envelope[:-64], envelope[-64:]
    assert digest == hmac.new(b"secret", payload, hashlib.sha256).hexdigest().encode()
    assert json.loads(zlib.decompress(payload)) == message
    assert heartbeat.unwrap(envelope, "secret") == message


@pytest.mark.parametrize(("mangle", "reason"), [
    (lambda e: e[:-1] + b"0", "HMAC mismatch"),
    (lambda e: b"\x00" + e[1:], "HMAC mismatch"),
    (lambda e: e[:10], "too short"),
])
def test_tampered_envelopes_are_rejected(mangle, reason: str) -> None:
    envelope = heartbeat.wrap({"id": "a"}, "secret")
    with pytest.raises(heartbeat.EnvelopeError, match=reason):
        heartbeat.unwrap(mangle(envelope), "secret")


def test_decompression_is_bounded() -> None:
    bomb = zlib.compress(b"[" + b"0," * (heartbeat.MAX_DECOMPRESSED) + b"0]", 9)
    envelope = bomb + hmac.new(b"k", bomb, hashlib.sha256).hexdigest().encode()
    with pytest.raises(heartbeat.EnvelopeError, match="too large"):
        heartbeat.unwrap(envelope, "k")


def test_signed_non_object_is_rejected() -> None:
    payload = zlib.compress(b"[1, 2]")
    envelope = payload + hmac.new(b"k", payload, hashlib.sha256).hexdigest().encode()
    with pytest.raises(heartbeat.EnvelopeError, match="not a JSON object"):
        heartbeat.unwrap(envelope, "k")
