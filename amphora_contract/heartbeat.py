"""The heartbeat envelope: what an amphora sends and the health manager reads.

Two envelopes (byte layouts in docs/heartbeat.md):

- **version 3**, Octavia's: zlib-compressed JSON followed by the hex
  HMAC-SHA256 of the compressed bytes, keyed with ``heartbeat_key``. Stock
  Octavia agents send it; stock health managers read it.
- **version 4**, ours: a signed header (magic, amphora id, timestamp, sequence
  number) before the message as zlib sections (the listeners, then the pools
  a group at a time), signed with a per-amphora key derived from the
  controller's one master key (:func:`derive_amphora_key`). The id is
  readable before verification so the receiver can derive the key; the MAC
  covers it. :class:`HeartbeatVerifier` rejects replays and stale datagrams,
  and parses again only the sections whose bytes changed.

Every rejection raises :class:`HeartbeatError` carrying a
:class:`RejectReason`, so a receiver counts why it dropped a datagram. The
agent wraps (:mod:`amphora_agent.heartbeat` sends); a controller unwraps.
"""

from __future__ import annotations

import enum
import hmac
import json
import re
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from itertools import chain
from typing import Any

# The receive path inflates and parses every datagram: where the controller
# has them, ISA-L's inflate (the zlib format, about twice as fast) and orjson
# (a stricter JSON parser, about twice as fast) do it; the agent only wraps
# and does without them (docs/heartbeat.md, "Receive cost").
try:
    from isal import isal_zlib as _inflate_lib
    from isal.isal_zlib import error as _InflateError
except ImportError:  # pragma: no cover - the agent's wheel
    _inflate_lib = zlib  # type: ignore[misc]
    _InflateError = zlib.error  # type: ignore[misc,assignment]
try:
    from orjson import loads as _json_loads
except ImportError:  # pragma: no cover - the agent's wheel
    _json_loads = json.loads

VERSION = 3
VERSION_4 = 4
DIGEST_HEX_LEN = 64
DIGEST_LEN = 32
MAX_DATAGRAM = 65507
MAX_DECOMPRESSED = 1 << 20
V4_MAGIC = b"AHC4"
# The two-section version-4 layout that 0.1.0 agents send; still accepted.
V4_TWO_SECTION_MAGIC = b"AHB4"
# magic, id length; then the id; then timestamp (ms) and sequence number; then
# sections, each a length and a zlib stream (docs/heartbeat.md)
_V4_HEAD = struct.Struct("!4sB")
_V4_TS_SEQ = struct.Struct("!QQ")
# the two-section layout: timestamp, sequence number, listeners section length
_V4_TS_SEQ_LEN = struct.Struct("!QQI")
_V4_SECTION = struct.Struct("!H")
V4_MIN_LEN = _V4_HEAD.size + 1 + _V4_TS_SEQ.size + _V4_SECTION.size + 1 + DIGEST_LEN
# The sender groups the pools of one listener in a section, at most this many
# to a section: a change re-parses one small section.
POOLS_PER_SECTION = 16
DEFAULT_MAX_AGE = 30.0
REPLAY_WINDOW = 64
_WINDOW_MASK = (1 << REPLAY_WINDOW) - 1
_HKDF_SALT = b"amphora heartbeat v4"

_ID = re.compile(r"[0-9A-Za-z_.:-]{1,128}")
_ID_CHARS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.:-"
MAX_ID_LEN = 128
_AMPHORA_ID = re.compile(rb"[0-9A-Za-z][0-9A-Za-z_.-]{0,63}")
LISTENER_STATUSES = frozenset({"OPEN", "FULL", "DOWN", "STOP"})
POOL_STATUSES = frozenset({"UP", "DOWN", "MAINT"})
MEMBER_STATUSES = frozenset({"UP", "DOWN", "DRAIN", "MAINT", "no check"})
STAT_NAMES = frozenset({"tx", "rx", "conns", "totconns", "ereq"})
_POOL_KEYS = frozenset({"status", "members"})
_TOP_KEYS = frozenset({"id", "seq", "ver", "listeners", "pools"})
_ABSENT = object()


class RejectReason(enum.Enum):
    """Why a datagram was dropped; a receiver counts each."""

    TRUNCATED = "truncated"
    OVERSIZED = "oversized"
    BAD_HEADER = "bad_header"
    BAD_SIGNATURE = "bad_signature"
    BAD_COMPRESSION = "bad_compression"
    DECOMPRESSED_TOO_LARGE = "decompressed_too_large"
    NOT_JSON = "not_json"
    BAD_SCHEMA = "bad_schema"
    REPLAYED = "replayed"
    STALE = "stale"


class HeartbeatError(ValueError):
    """A datagram that is not a valid, correctly signed heartbeat."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


# The name the agent has always imported.
EnvelopeError = HeartbeatError


def message(amphora_id: str | None, seq: int, listeners: dict[str, Any],
            pools: dict[str, Any], version: int = VERSION) -> dict[str, Any]:
    """A heartbeat message (before wrapping): Octavia's version-3 shape."""
    return {"id": amphora_id, "seq": seq, "ver": version,
            "listeners": listeners, "pools": pools}


def derive_amphora_key(master_key: str, amphora_id: str) -> str:
    """The version-4 key of one amphora: HKDF-SHA256 (RFC 5869) of the master
    key, salt ``b"amphora heartbeat v4"``, info the amphora id, 32 bytes,
    as 64 lowercase hex digits (what the amphora's ``heartbeat_key`` holds).
    The controller keeps only the master key."""
    prk = hmac.digest(_HKDF_SALT, master_key.encode("utf-8"), "sha256")
    return hmac.digest(prk, amphora_id.encode("utf-8") + b"\x01", "sha256").hex()


def _key_bytes(amphora_key: str) -> bytes:
    if len(amphora_key) != 2 * DIGEST_LEN:
        raise ValueError("a version-4 key is 64 hex digits (derive_amphora_key)")
    return bytes.fromhex(amphora_key)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _compress(body: dict[str, Any]) -> bytes:
    return zlib.compress(_json(body), 9)


def wrap(body: dict[str, Any], key: str) -> bytes:
    """A version-3 envelope (Octavia's)."""
    payload = _compress(body)
    return payload + hmac.digest(key.encode("utf-8"), payload, "sha256").hex().encode()


def pool_groups(pools: dict[str, Any]) -> list[dict[str, Any]]:
    """The pools as version-4 sections: those of one listener (the part of
    the key after its last ``:``) together, at most :data:`POOLS_PER_SECTION`
    to a group, in the message's order, so an unchanged group is byte-for-byte
    the section it was in the previous heartbeat."""
    by_listener: dict[str, list[tuple[str, Any]]] = {}
    for key, pool in pools.items():
        by_listener.setdefault(key.rpartition(":")[2], []).append((key, pool))
    return [dict(items[at:at + POOLS_PER_SECTION]) for items in by_listener.values()
            for at in range(0, len(items), POOLS_PER_SECTION)]


def wrap_v4(body: dict[str, Any], amphora_key: str, *, timestamp: float | None = None) -> bytes:
    """A version-4 envelope of a :func:`message` (its ``ver`` is not sent:
    the magic says 4). ``amphora_key`` is :func:`derive_amphora_key` of the
    controller's master key and ``body["id"]``. The listeners travel as one
    zlib section, the pools as one section per :func:`pool_groups` group:
    counters change every heartbeat, pools seldom, and the receiver parses
    again only the sections whose bytes differ."""
    amphora_id = str(body["id"]).encode("ascii")
    if not _AMPHORA_ID.fullmatch(amphora_id):
        raise ValueError("amphora id is not valid in a version-4 header")
    ts_ms = int((time.time() if timestamp is None else timestamp) * 1000)
    parts = [_V4_HEAD.pack(V4_MAGIC, len(amphora_id)), amphora_id,
             _V4_TS_SEQ.pack(ts_ms, body["seq"])]
    for section in (body["listeners"], *pool_groups(body["pools"])):
        compressed = zlib.compress(_json(section), 9)
        parts += (_V4_SECTION.pack(len(compressed)), compressed)
    signed = b"".join(parts)
    return signed + hmac.digest(_key_bytes(amphora_key), signed, "sha256")


def _inflate_raw(payload: bytes | memoryview, limit: int = MAX_DECOMPRESSED) -> bytes:
    """``payload`` inflated, at most ``limit`` bytes of it (a zlib bomb stops there)."""
    decompressor = _inflate_lib.decompressobj()
    try:
        raw = decompressor.decompress(payload, limit)
    except (_InflateError, zlib.error) as exc:
        raise HeartbeatError(RejectReason.BAD_COMPRESSION, f"not zlib data: {exc}") from None
    # ISA-L keeps unread input inside rather than in unconsumed_tail: an
    # unfinished stream that filled the limit is too large either way.
    if decompressor.unconsumed_tail or (not decompressor.eof and len(raw) >= limit):
        raise HeartbeatError(RejectReason.DECOMPRESSED_TOO_LARGE, "payload too large")
    if not decompressor.eof:
        raise HeartbeatError(RejectReason.BAD_COMPRESSION, "zlib stream is truncated")
    return raw


def _parse(raw: bytes) -> Any:
    try:
        return _json_loads(raw)
    except ValueError:
        raise HeartbeatError(RejectReason.NOT_JSON, "payload is not JSON") from None


def _inflate(payload: bytes | memoryview) -> Any:
    return _parse(_inflate_raw(payload))


def _bad(detail: str) -> HeartbeatError:
    return HeartbeatError(RejectReason.BAD_SCHEMA, detail)


def _check_ids(ids: Any, count: int, what: str) -> None:
    """Every one of ``count`` ids matches :data:`_ID`, checked for all at once
    in C (a regex per id costs more than the whole JSON parse)."""
    if not count:
        return
    try:
        joined = "\n".join(ids).encode("ascii")
    except (UnicodeEncodeError, TypeError):
        raise _bad(f"{what}: an id is not valid") from None
    # Each id brings its own characters and no "\n": the separators remain.
    if joined.translate(None, _ID_CHARS) != b"\n" * (count - 1):
        raise _bad(f"{what}: an id is not valid")
    if len(joined) - (count - 1) > count * MAX_ID_LEN or b"\n\n" in joined \
            or joined[:1] == b"\n" or joined[-1:] == b"\n":
        raise _bad(f"{what}: an id is empty or too long")


def _all_within(values: Any, allowed: frozenset[str]) -> bool:
    try:
        return allowed.issuperset(values)
    except TypeError:  # an unhashable value: a list or an object
        return False


def _check_pools(pools: Any, where: str) -> None:
    """Pools and their members, checked a layer at a time with C loops: a
    heartbeat carries thousands of members."""
    if type(pools) is not dict:
        raise _bad(f"{where}: pools is not an object")
    _check_ids(pools, len(pools), f"{where} pools")
    entries = list(pools.values())
    if not all(type(pool) is dict and pool.keys() == _POOL_KEYS for pool in entries):
        raise _bad(f"{where}: a pool is not {{status, members}}")
    if not _all_within([pool["status"] for pool in entries], POOL_STATUSES):
        raise _bad(f"{where}: a pool status is not valid")
    members = [pool["members"] for pool in entries]
    if not all(type(member_map) is dict for member_map in members):
        raise _bad(f"{where}: members is not an object")
    _check_ids(chain.from_iterable(members), sum(map(len, members)), f"{where} members")
    if not _all_within(chain.from_iterable(map(dict.values, members)), MEMBER_STATUSES):
        raise _bad(f"{where}: a member status is not valid")


def _check_new_pools(pools: Any, validated: dict[str, Any] | None) -> None:
    """The message's pools, skipping those equal (==, a C walk) to a pool
    in ``validated``: the checks depend on the value alone, and JSON strings
    only equal strings, so an equal pool passes too."""
    if validated is not None and type(pools) is dict:
        pools = {pool_id: pool for pool_id, pool in pools.items()
                 if validated.get(pool_id, _ABSENT) != pool}
    _check_pools(pools, "message")


def _check_listeners(listeners: Any) -> None:
    if type(listeners) is not dict:
        raise _bad("listeners is not an object")
    _check_ids(listeners, len(listeners), "listeners")
    for listener in listeners.values():
        if type(listener) is not dict or not (
                {"status", "stats"} <= listener.keys() <= {"status", "stats", "pools"}):
            raise _bad("a listener is not {status, stats[, pools]}")
        status, stats = listener["status"], listener["stats"]
        if type(status) is not str or status not in LISTENER_STATUSES:
            raise _bad("a listener status is not valid")
        if type(stats) is not dict or stats.keys() != STAT_NAMES:
            raise _bad("listener stats are not tx, rx, conns, totconns, ereq")
        for value in stats.values():
            if type(value) is not int or value < 0:
                raise _bad("a listener counter is not a non-negative integer")
        if "pools" in listener:
            _check_pools(listener["pools"], "listener")


def validate(body: Any, version: int,
             validated_pools: dict[str, dict[str, Any]] | None = None, *,
             pools_checked: bool = False) -> dict[str, Any]:
    """Strict parse: Octavia's message shape, whole-string ids, known
    statuses, non-negative integer counters; else BAD_SCHEMA.
    ``validated_pools``: amphora id -> pools that passed before
    (:func:`_check_new_pools`); ``pools_checked``: the caller checked them."""
    if type(body) is not dict:
        raise _bad("payload is not a JSON object")
    if body.keys() != _TOP_KEYS:
        raise _bad("top-level keys are not id, seq, ver, listeners, pools")
    amphora_id, seq = body["id"], body["seq"]
    if type(amphora_id) is not str or not _ID.fullmatch(amphora_id):
        raise _bad("id is not valid")
    if type(seq) is not int or seq < 0:
        raise _bad("seq is not a non-negative integer")
    if body["ver"] != version or type(body["ver"]) is not int:
        raise _bad(f"ver is not {version}")
    _check_listeners(body["listeners"])
    if not pools_checked:
        _check_new_pools(body["pools"], None if validated_pools is None
                         else validated_pools.get(amphora_id))
    return body


def _digest_matches(key: bytes, payload: bytes | memoryview, digest: bytes) -> bool:
    return hmac.compare_digest(hmac.digest(key, payload, "sha256").hex().encode(), digest)


def _verified_v3_payload(envelope: bytes, key: bytes) -> memoryview:
    if len(envelope) <= DIGEST_HEX_LEN:
        raise HeartbeatError(RejectReason.TRUNCATED, "datagram too short")
    view = memoryview(envelope)
    if not _digest_matches(key, view[:-DIGEST_HEX_LEN], envelope[-DIGEST_HEX_LEN:]):
        raise HeartbeatError(RejectReason.BAD_SIGNATURE, "HMAC mismatch")
    return view[:-DIGEST_HEX_LEN]


def unwrap_v3(envelope: bytes, key: bytes,
              validated_pools: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    return validate(_inflate(_verified_v3_payload(envelope, key)), VERSION, validated_pools)


_WHITESPACE = b" \t\n\r"


def _pools_span(raw: bytes) -> tuple[int, int] | None:
    """Where the text of the top-level ``pools`` value probably is: after
    the first ``"pools":``, up to the second-last ``}`` (pools is the last or
    the second-last key as Octavia's agent and ours write a message). A guess:
    :class:`_V3Splice` proves it before it uses it."""
    at = raw.find(b'"pools"')
    if at < 0:
        return None
    colon = raw.find(b":", at + 7, at + 64)
    if colon < 0 or raw[at + 7:colon].strip(_WHITESPACE):
        return None
    start = len(raw) - len(raw[colon + 1:].lstrip(_WHITESPACE))
    end = raw.rfind(b"}", start, raw.rfind(b"}")) + 1
    if end <= start or raw[start:start + 1] != b"{":
        return None
    return start, end


class _V3Splice:
    """Version 3 without parsing unchanged pools again.

    Between two heartbeats of an amphora only the counters change; the pools
    text is byte-for-byte the same. For a payload ``X + V + Y`` (``V`` the
    pools text, :func:`_pools_span`), parse ``X + S + Y`` where ``S`` is a
    JSON string of a random secret nonce. If that parses and its top-level
    ``pools`` is exactly the nonce, ``S`` was lexed as one value token in the
    top-level pools position (a sender who does not know the nonce cannot
    spell it anywhere else, and a string left open in ``X`` would end at
    ``S``'s first quote), so replacing it by ``V``, a complete JSON value,
    yields the same parse as the whole payload, with ``pools`` the parse of
    ``V``. When ``V`` is the same bytes as the amphora's last valid pools
    text, that parse (already checked) is reused: the payload is parsed
    strictly and in full, the big unchanged part only once. Anything else
    falls back to a plain full parse, so results and reject reasons are the
    same either way.
    """

    def __init__(self) -> None:
        self._nonce = secrets.token_hex(16)
        self._sentinel = f'"{self._nonce}"'.encode()
        # amphora id -> (its last valid pools, their text if proven, else None)
        self.last: dict[str, tuple[dict[str, Any], bytes | None]] = {}

    def parse(self, raw: bytes) -> tuple[Any, bytes | None, bool]:
        """(message, the proven text of its pools or None, whether its pools
        are the same checked object as last time)."""
        span = _pools_span(raw)
        if span is not None:
            start, end = span
            try:
                outer = _json_loads(b"".join((raw[:start], self._sentinel, raw[end:])))
            except ValueError:
                outer = None
            if type(outer) is dict and outer.get("pools") == self._nonce \
                    and type(outer.get("id")) is str:
                text = raw[start:end]
                last = self.last.get(outer["id"])
                if last is not None and last[1] == text:
                    outer["pools"] = last[0]
                    return outer, text, True
                try:
                    outer["pools"] = _json_loads(text)
                except ValueError:
                    pass  # not a value on its own: the span was a wrong guess
                else:
                    return outer, text, False
        return _parse(raw), None, False

    def previous(self, body: Any) -> dict[str, dict[str, Any]] | None:
        """{id: pools} of the last valid message with ``body``'s id, if any."""
        if type(body) is not dict or type(body.get("id")) is not str:
            return None
        last = self.last.get(body["id"])
        return None if last is None else {body["id"]: last[0]}

    def remember(self, body: dict[str, Any], text: bytes | None) -> None:
        if len(self.last) > 100_000:  # bounded: ids come from the wire
            self.last.clear()
        self.last[body["id"]] = (body["pools"], text)


@dataclass(frozen=True)
class V4Header:
    """The signed header of a version-4 datagram, and where its sections
    start; ``pools_at`` where the pools section starts in the two-section
    layout (None: the sectioned one)."""

    amphora_id: str
    timestamp_ms: int
    seq: int
    sections_at: int
    pools_at: int | None = None


def peek_v4(envelope: bytes) -> V4Header | None:
    """The header of a version-4 datagram (not yet verified); None for
    anything else (version 3)."""
    magic = envelope[:4]
    if magic != V4_MAGIC and magic != V4_TWO_SECTION_MAGIC:
        return None
    if len(envelope) < V4_MIN_LEN:
        raise HeartbeatError(RejectReason.TRUNCATED, "datagram too short")
    start = _V4_HEAD.size + envelope[4]
    raw_id = envelope[_V4_HEAD.size:start]
    if not _AMPHORA_ID.fullmatch(raw_id):
        raise HeartbeatError(RejectReason.BAD_HEADER, "amphora id is not valid")
    amphora_id = raw_id.decode("ascii")
    if magic == V4_TWO_SECTION_MAGIC:
        if len(envelope) < start + _V4_TS_SEQ_LEN.size + 2 + DIGEST_LEN:
            raise HeartbeatError(RejectReason.TRUNCATED, "datagram too short")
        ts_ms, seq, listeners_len = _V4_TS_SEQ_LEN.unpack_from(envelope, start)
        listeners_at = start + _V4_TS_SEQ_LEN.size
        pools_at = listeners_at + listeners_len
        if listeners_len < 1 or pools_at >= len(envelope) - DIGEST_LEN:
            raise HeartbeatError(RejectReason.TRUNCATED, "sections overrun the datagram")
        return V4Header(amphora_id, ts_ms, seq, listeners_at, pools_at)
    sections_at = start + _V4_TS_SEQ.size
    if len(envelope) < sections_at + _V4_SECTION.size + 1 + DIGEST_LEN:
        raise HeartbeatError(RejectReason.TRUNCATED, "datagram too short")
    ts_ms, seq = _V4_TS_SEQ.unpack_from(envelope, start)
    return V4Header(amphora_id, ts_ms, seq, sections_at)


def v4_sections(envelope: bytes, header: V4Header) -> list[bytes]:
    """The zlib sections of a version-4 datagram: listeners first, then pools."""
    if header.pools_at is not None:
        return [envelope[header.sections_at:header.pools_at],
                envelope[header.pools_at:-DIGEST_LEN]]
    sections: list[bytes] = []
    at, end = header.sections_at, len(envelope) - DIGEST_LEN
    while at < end:
        if at + _V4_SECTION.size > end:
            raise HeartbeatError(RejectReason.TRUNCATED, "a section length is cut off")
        (length,) = _V4_SECTION.unpack_from(envelope, at)
        at += _V4_SECTION.size
        if length < 1 or at + length > end:
            raise HeartbeatError(RejectReason.TRUNCATED, "a section overruns the datagram")
        sections.append(envelope[at:at + length])
        at += length
    if not sections:
        raise HeartbeatError(RejectReason.TRUNCATED, "no listeners section")
    return sections


def _unnamed(section: Any, name: str, two_section: bool) -> Any:
    """A section's content: in the two-section layout each section is an
    object whose only key is ``name``."""
    if not two_section:
        return section
    if type(section) is not dict or section.keys() != {name}:
        raise _bad(f"the {name} section is not {{{name!r}: ...}}")
    return section[name]


@dataclass
class _V4Pools:
    """One amphora's last verified pools sections, their parses and the merged pools."""

    two_section: bool
    sections: list[bytes]
    parsed: list[dict[str, Any]]
    pools: dict[str, Any]


class HeartbeatVerifier:
    """Verifies datagrams of both versions and keeps the version-4 replay state.

    ``v3_key`` is the shared ``heartbeat_key`` of stock agents (None: version 3
    refused); ``master_key`` derives each amphora's version-4 key (None:
    version 4 refused). A version-4 datagram is accepted when its MAC checks,
    its timestamp is within ``max_age`` seconds of now (either side), and its
    sequence number is new: above the highest seen for that amphora, or
    within the last :data:`REPLAY_WINDOW` numbers and not seen yet (UDP
    reorders). A timestamp more than ``max_age`` past the last accepted one
    starts a new window: the agent restarted and lost its count, and any
    replay from before would be stale. Thread-safe.

    A message's ``pools`` may be the same object as in the previous message
    of that amphora: treat messages as read-only.
    """

    def __init__(self, *, v3_key: str | None = None, master_key: str | None = None,
                 max_age: float = DEFAULT_MAX_AGE, max_datagram: int = MAX_DATAGRAM,
                 clock: Any = time.time) -> None:
        self._v3_key = v3_key.encode("utf-8") if v3_key is not None else None
        self._master_key = master_key
        self._max_age_ms = int(max_age * 1000)
        self.max_datagram = max_datagram
        self._clock = clock
        self._keys: dict[str, bytes] = {}
        self._v4_pools: dict[str, _V4Pools] = {}
        self._v3 = _V3Splice()
        # amphora id -> (highest seq, bitmap of seen seqs below it, its timestamp)
        self._windows: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()

    def _amphora_key(self, amphora_id: str) -> bytes:
        key = self._keys.get(amphora_id)
        if key is None:
            assert self._master_key is not None
            key = bytes.fromhex(derive_amphora_key(self._master_key, amphora_id))
            if len(self._keys) > 100_000:  # bounded: ids come from the wire
                self._keys.clear()
            self._keys[amphora_id] = key
        return key

    def verify(self, datagram: bytes) -> dict[str, Any]:
        """The message of a valid datagram, else :class:`HeartbeatError`."""
        if len(datagram) > self.max_datagram:
            raise HeartbeatError(RejectReason.OVERSIZED, "datagram too large")
        peeked = peek_v4(datagram)
        if peeked is None:
            if self._v3_key is None:
                raise HeartbeatError(RejectReason.BAD_SIGNATURE, "version 3 is not accepted")
            return self._unwrap_v3(datagram, self._v3_key)
        if self._master_key is None:
            raise HeartbeatError(RejectReason.BAD_SIGNATURE, "version 4 is not accepted")
        header = peeked
        sections = v4_sections(datagram, header)
        view = memoryview(datagram)
        mac = hmac.digest(self._amphora_key(header.amphora_id), view[:-DIGEST_LEN], "sha256")
        if not hmac.compare_digest(mac, datagram[-DIGEST_LEN:]):
            raise HeartbeatError(RejectReason.BAD_SIGNATURE, "HMAC mismatch")
        now_ms = int(self._clock() * 1000)
        if abs(now_ms - header.timestamp_ms) > self._max_age_ms:
            raise HeartbeatError(RejectReason.STALE, "timestamp outside the window")
        two_section = header.pools_at is not None
        raw = _inflate_raw(sections[0])
        listeners = _unnamed(_parse(raw), "listeners", two_section)
        _check_listeners(listeners)
        pools = self._pools(header.amphora_id, sections[1:], MAX_DECOMPRESSED - len(raw),
                            two_section)
        self._accept_seq(header)
        return {"id": header.amphora_id, "seq": header.seq, "ver": VERSION_4,
                "listeners": listeners, "pools": pools}

    def _unwrap_v3(self, datagram: bytes, key: bytes) -> dict[str, Any]:
        """Version 3, parsing and checking again only what differs from the
        last valid message carrying the same id (:class:`_V3Splice`; pools
        that equal one checked before are not walked again). Both are sound
        for any checked pools, so it does not matter that any holder of the
        shared key may claim any id."""
        raw = _inflate_raw(_verified_v3_payload(datagram, key))
        body, text, reused = self._v3.parse(raw)
        validate(body, VERSION, self._v3.previous(body), pools_checked=reused)
        if not reused:
            with self._lock:
                self._v3.remember(body, text)
        return body

    def _pools(self, amphora_id: str, sections: list[bytes], budget: int,
               two_section: bool) -> dict[str, Any]:
        """The pools sections, each parsed and checked again only when its
        bytes differ from the section in the same place of this amphora's
        last verified datagram (the cache holds authentic amphorae only: it
        is filled after the MAC checks)."""
        cached = self._v4_pools.get(amphora_id)
        if cached is not None and cached.two_section != two_section:
            cached = None  # the same bytes mean another thing in the other layout
        if cached is not None and cached.sections == sections:
            return cached.pools
        parsed: list[dict[str, Any]] = []
        for index, section in enumerate(sections):
            if cached is not None and index < len(cached.sections) \
                    and cached.sections[index] == section:
                parsed.append(cached.parsed[index])
                continue
            if budget < 1:
                raise HeartbeatError(RejectReason.DECOMPRESSED_TOO_LARGE, "payload too large")
            raw = _inflate_raw(section, budget)
            budget -= len(raw)
            group = _unnamed(_parse(raw), "pools", two_section)
            _check_new_pools(group, cached.parsed[index] if cached is not None
                             and index < len(cached.parsed) else None)
            parsed.append(group)
        pools: dict[str, Any] = {}
        for group in parsed:
            pools.update(group)
        if len(pools) != sum(map(len, parsed)):
            raise _bad("a pool is in two sections")
        self._v4_pools[amphora_id] = _V4Pools(two_section, sections, parsed, pools)
        return pools

    def _accept_seq(self, header: V4Header) -> None:
        with self._lock:
            state = self._windows.get(header.amphora_id)
            if state is None or header.timestamp_ms > state[2] + self._max_age_ms:
                self._windows[header.amphora_id] = (header.seq, 1, header.timestamp_ms)
                return
            highest, seen, ts_ms = state
            if header.seq > highest:
                shift = header.seq - highest
                seen = ((seen << shift) | 1) & _WINDOW_MASK if shift < REPLAY_WINDOW else 1
                # the newest timestamp stays: a replay can never look newer
                self._windows[header.amphora_id] = (header.seq, seen,
                                                    max(ts_ms, header.timestamp_ms))
                return
            offset = highest - header.seq
            if offset >= REPLAY_WINDOW or (seen >> offset) & 1:
                raise HeartbeatError(RejectReason.REPLAYED, "sequence number already seen")
            self._windows[header.amphora_id] = (highest, seen | (1 << offset),
                                                max(ts_ms, header.timestamp_ms))


def unwrap(envelope: bytes, key: str) -> dict[str, Any]:
    """One datagram of either version, stateless: version 3 with ``key`` as
    the shared ``heartbeat_key``; version 4 with ``key`` as the master key
    (staleness checked, replays not: use :class:`HeartbeatVerifier`)."""
    return HeartbeatVerifier(v3_key=key, master_key=key).verify(envelope)
