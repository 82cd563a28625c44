"""The receiver side of the heartbeat contract: strict parse, version 4,
reject reasons."""

from __future__ import annotations

import hashlib
import hmac
import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amphora_contract import heartbeat
from amphora_contract.heartbeat import HeartbeatError, HeartbeatVerifier, RejectReason
from controller_stub import health

MASTER = "master-secret"
AMP = "5e0bd2f6-0d0b-4f2a-9a2b-3c1c9b1a7e01"
LISTENER = "0b3c1a6e-8a5c-4c7f-9d0e-2f1b7a9c4d11"
POOL = "7f3a2b1c-1d2e-4f5a-8b9c-0d1e2f3a4b5c"
MEMBER = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


def body(seq: int = 1, ver: int = 3) -> dict:
    return heartbeat.message(AMP, seq, {LISTENER: {"status": "OPEN", "stats": {
        "tx": 1, "rx": 2, "conns": 3, "totconns": 4, "ereq": 0}}},
        {f"{POOL}:{LISTENER}": {"status": "UP", "members": {MEMBER: "UP"}}}, version=ver)


def v4(seq: int, ts: float = 1000.0, key: str | None = None) -> bytes:
    key = key or heartbeat.derive_amphora_key(MASTER, AMP)
    return heartbeat.wrap_v4(body(seq, 4), key, timestamp=ts)


def verifier(now: float = 1000.0) -> HeartbeatVerifier:
    return HeartbeatVerifier(v3_key="v3key", master_key=MASTER, clock=lambda: now)


def reason(call) -> RejectReason:
    with pytest.raises(HeartbeatError) as info:
        call()
    return info.value.reason


def signed_v3(raw: bytes, key: bytes = b"v3key") -> bytes:
    payload = zlib.compress(raw)
    return payload + hmac.new(key, payload, hashlib.sha256).hexdigest().encode()


def test_controller_api_reexports_the_contract() -> None:
    assert health.HeartbeatError is HeartbeatError
    assert health.unwrap(heartbeat.wrap(body(), "k"), "k") == body()


def test_key_derivation_is_hkdf_sha256_of_the_id() -> None:
    prk = hmac.new(b"amphora heartbeat v4", MASTER.encode(), hashlib.sha256).digest()
    expected = hmac.new(prk, AMP.encode() + b"\x01", hashlib.sha256).hexdigest()
    assert heartbeat.derive_amphora_key(MASTER, AMP) == expected
    assert heartbeat.derive_amphora_key(MASTER, "other") != expected


def sections(rest: bytes) -> list[bytes]:
    """The length-prefixed sections between the header and the MAC."""
    out, at = [], 16
    while at < len(rest) - 32:
        length = int.from_bytes(rest[at:at + 2], "big")
        out.append(rest[at + 2:at + 2 + length])
        at += 2 + length
    assert at == len(rest) - 32
    return out


def test_v4_layout_is_as_documented() -> None:
    datagram = v4(7, ts=1234.5)
    assert datagram[:4] == b"AHC4"
    assert datagram[4] == len(AMP)
    assert datagram[5:5 + len(AMP)] == AMP.encode()
    rest = datagram[5 + len(AMP):]
    assert int.from_bytes(rest[:8], "big") == 1234500
    assert int.from_bytes(rest[8:16], "big") == 7
    sent = body(7, 4)
    assert [json.loads(zlib.decompress(s)) for s in sections(rest)] == [
        sent["listeners"], sent["pools"]]
    key = bytes.fromhex(heartbeat.derive_amphora_key(MASTER, AMP))
    assert rest[-32:] == hmac.new(key, datagram[:-32], hashlib.sha256).digest()


def many_pools(listeners: int, pools: int) -> dict:
    return {f"p{n}:l{i}": {"status": "UP", "members": {f"m{n}-{i}": "UP"}}
            for i in range(listeners) for n in range(pools)}


def test_v4_pools_travel_a_listener_group_to_a_section() -> None:
    message = heartbeat.message(AMP, 1, {}, many_pools(3, 20), version=4)
    datagram = heartbeat.wrap_v4(message, heartbeat.derive_amphora_key(MASTER, AMP))
    groups = [json.loads(zlib.decompress(s)) for s in sections(datagram[5 + len(AMP):])[1:]]
    assert [len(group) for group in groups] == [16, 4] * 3
    assert all(len({key.rpartition(":")[2] for key in group}) == 1 for group in groups)
    assert verifier(now=__import__("time").time()).verify(datagram)["pools"] == message["pools"]


def test_v4_a_changed_section_is_parsed_again_the_others_reused() -> None:
    check = verifier()
    key = heartbeat.derive_amphora_key(MASTER, AMP)
    message = heartbeat.message(AMP, 1, {}, many_pools(4, 3), version=4)
    first = check.verify(heartbeat.wrap_v4(message, key, timestamp=1000.0))["pools"]
    assert check.verify(heartbeat.wrap_v4({**message, "seq": 2}, key, timestamp=1000.0))[
        "pools"] is first
    message = {**message, "seq": 3, "pools": {**message["pools"], "p1:l2": {
        "status": "DOWN", "members": {"m1-2": "DOWN"}}}}
    assert check.verify(heartbeat.wrap_v4(message, key, timestamp=1000.0))["pools"] == (
        message["pools"])
    message["seq"] = 4
    message["pools"]["p1:l3"] = {"status": "UP", "members": {"m1-3": "SORT OF"}}
    bad = heartbeat.wrap_v4(message, key, timestamp=1000.0)
    assert reason(lambda: check.verify(bad)) is RejectReason.BAD_SCHEMA


def raw_v4(sections: list[bytes], seq: int = 1) -> bytes:
    signed = b"AHC4" + bytes([len(AMP)]) + AMP.encode() + (1000000).to_bytes(8, "big") + \
        seq.to_bytes(8, "big") + b"".join(len(s).to_bytes(2, "big") + s for s in sections)
    key = bytes.fromhex(heartbeat.derive_amphora_key(MASTER, AMP))
    return signed + hmac.new(key, signed, hashlib.sha256).digest()


def test_v4_a_pool_in_two_sections_is_rejected() -> None:
    pool = zlib.compress(json.dumps(body()["pools"]).encode())
    listeners = zlib.compress(json.dumps(body()["listeners"]).encode())
    assert verifier().verify(raw_v4([listeners, pool]))["pools"] == body()["pools"]
    assert reason(lambda: verifier().verify(raw_v4([listeners, pool, pool]))) is (
        RejectReason.BAD_SCHEMA)


def test_v4_decompression_is_bounded_across_sections() -> None:
    listeners = zlib.compress(json.dumps(body()["listeners"]).encode())
    # each alone within the bound, valid (an empty group), two of them past it
    half = zlib.compress(b" " * (heartbeat.MAX_DECOMPRESSED * 3 // 5) + b"{}", 9)
    assert verifier().verify(raw_v4([listeners, half]))["pools"] == {}
    assert reason(lambda: verifier().verify(raw_v4([listeners, half, half]))) is (
        RejectReason.DECOMPRESSED_TOO_LARGE)


def two_section_v4(message: dict, ts: float = 1000.0) -> bytes:
    """The two-section version-4 layout, as a 0.1.0 agent sends it."""
    listeners = zlib.compress(json.dumps({"listeners": message["listeners"]}).encode(), 9)
    pools = zlib.compress(json.dumps({"pools": message["pools"]}).encode(), 9)
    signed = b"AHB4" + bytes([len(AMP)]) + AMP.encode() + int(ts * 1000).to_bytes(8, "big") + \
        message["seq"].to_bytes(8, "big") + len(listeners).to_bytes(4, "big") + listeners + pools
    key = bytes.fromhex(heartbeat.derive_amphora_key(MASTER, AMP))
    return signed + hmac.new(key, signed, hashlib.sha256).digest()


def test_v4_two_section_layout_of_older_agents_is_accepted() -> None:
    check = verifier()
    first = check.verify(two_section_v4(body(1, 4)))
    assert first == body(1, 4)
    assert check.verify(two_section_v4(body(2, 4)))["pools"] is first["pools"]
    assert reason(lambda: check.verify(two_section_v4(body(2, 4)))) is RejectReason.REPLAYED
    # the sectioned layout from the same amphora: its own cache, same result
    assert check.verify(v4(3)) == body(3, 4)
    assert check.verify(two_section_v4(body(4, 4))) == body(4, 4)
    unnamed = body(5, 4)
    unnamed["pools"] = {"pools": unnamed["pools"]}  # a pool named "pools" is not a pool
    assert reason(lambda: check.verify(v4_of(unnamed))) is RejectReason.BAD_SCHEMA


def v4_of(message: dict) -> bytes:
    return heartbeat.wrap_v4(message, heartbeat.derive_amphora_key(MASTER, AMP), timestamp=1000.0)


def test_v4_two_section_layout_sections_are_named() -> None:
    message = body(1, 4)
    listeners = zlib.compress(json.dumps(message["listeners"]).encode())  # no {"listeners": }
    pools = zlib.compress(json.dumps({"pools": message["pools"]}).encode())
    signed = b"AHB4" + bytes([len(AMP)]) + AMP.encode() + (1000000).to_bytes(8, "big") + \
        (1).to_bytes(8, "big") + len(listeners).to_bytes(4, "big") + listeners + pools
    key = bytes.fromhex(heartbeat.derive_amphora_key(MASTER, AMP))
    datagram = signed + hmac.new(key, signed, hashlib.sha256).digest()
    assert reason(lambda: verifier().verify(datagram)) is RejectReason.BAD_SCHEMA


def test_v3_and_v4_both_accepted() -> None:
    check = verifier()
    assert check.verify(heartbeat.wrap(body(), "v3key")) == body()
    assert check.verify(v4(1)) == body(1, 4)


def test_v4_replay_rejected_reordering_within_window_accepted() -> None:
    check = verifier()
    check.verify(v4(10))
    check.verify(v4(12))
    assert reason(lambda: check.verify(v4(12))) is RejectReason.REPLAYED
    check.verify(v4(11))  # late, but new
    assert reason(lambda: check.verify(v4(11))) is RejectReason.REPLAYED
    assert reason(lambda: check.verify(v4(10))) is RejectReason.REPLAYED
    check.verify(v4(200))
    assert reason(lambda: check.verify(v4(100))) is RejectReason.REPLAYED


def test_v4_agent_restart_with_a_fresh_timestamp_starts_a_new_window() -> None:
    check = verifier(now=1000.0)
    check.verify(v4(500, ts=1000.0))
    late = HeartbeatVerifier(v3_key="v3key", master_key=MASTER, clock=lambda: 1100.0)
    late._windows = check._windows
    assert late.verify(v4(1, ts=1100.0))["seq"] == 1


def test_v4_stale_and_future_timestamps_rejected() -> None:
    check = verifier(now=1000.0)
    assert reason(lambda: check.verify(v4(1, ts=1000.0 - 31))) is RejectReason.STALE
    assert reason(lambda: check.verify(v4(2, ts=1000.0 + 31))) is RejectReason.STALE
    assert check.verify(v4(3, ts=1000.0 - 29))["seq"] == 3


def test_v4_wrong_key_and_forged_header_rejected() -> None:
    check = verifier()
    wrong = heartbeat.derive_amphora_key("other-master", AMP)
    assert reason(lambda: check.verify(v4(1, key=wrong))) is RejectReason.BAD_SIGNATURE
    good = v4(2)
    other_id = good[:5] + b"6" + good[6:]  # another amphora's id, same length
    assert reason(lambda: check.verify(other_id)) is RejectReason.BAD_SIGNATURE
    bumped = bytearray(good)
    bumped[5 + len(AMP) + 15] ^= 1  # the sequence number
    assert reason(lambda: check.verify(bytes(bumped))) is RejectReason.BAD_SIGNATURE


def test_v4_changed_pools_are_parsed_again() -> None:
    check = verifier()
    key = heartbeat.derive_amphora_key(MASTER, AMP)
    first = check.verify(v4(1))
    assert check.verify(v4(2))["pools"] == first["pools"]
    changed = body(3, 4)
    changed["pools"][f"{POOL}:{LISTENER}"]["members"][MEMBER] = "DOWN"
    assert check.verify(heartbeat.wrap_v4(changed, key, timestamp=1000.0))["pools"] == (
        changed["pools"])
    changed["seq"] = 4
    changed["pools"][f"{POOL}:{LISTENER}"]["members"][MEMBER] = "SORT OF"
    bad = heartbeat.wrap_v4(changed, key, timestamp=1000.0)
    assert reason(lambda: check.verify(bad)) is RejectReason.BAD_SCHEMA


ADDED_POOLS = [
    {"bad id!": {"status": "UP", "members": {}}},
    {"7f3a2b1c:new": None},
    {"7f3a2b1c:new": {"status": "UP", "members": {"bad id!": "UP"}}},
    {"7f3a2b1c:new": {"status": "UP", "members": {MEMBER: "SORT OF"}}},
    {"7f3a2b1c:new": {"status": "UP", "members": {MEMBER: "UP"}, "extra": 1}},
]


@pytest.mark.parametrize("added", ADDED_POOLS)
def test_v4_pools_beside_an_unchanged_one_are_checked(added: dict) -> None:
    """Only pools that differ from the last verified ones are checked again:
    an invalid pool next to an unchanged valid one is still rejected."""
    check = verifier()
    check.verify(v4(1))
    changed = body(2, 4)
    changed["pools"].update(added)
    bad = heartbeat.wrap_v4(changed, heartbeat.derive_amphora_key(MASTER, AMP), timestamp=1000.0)
    assert reason(lambda: check.verify(bad)) is RejectReason.BAD_SCHEMA


@pytest.mark.parametrize("added", ADDED_POOLS)
def test_v3_pools_beside_an_unchanged_one_are_checked(added: dict) -> None:
    check = verifier()
    check.verify(heartbeat.wrap(body(1), "v3key"))
    changed = body(2)
    changed["pools"].update(added)
    bad = heartbeat.wrap(changed, "v3key")
    assert reason(lambda: check.verify(bad)) is RejectReason.BAD_SCHEMA


def test_v4_listeners_are_checked() -> None:
    key = heartbeat.derive_amphora_key(MASTER, AMP)
    message = body(1, 4)
    message["listeners"][LISTENER]["stats"]["tx"] = -5
    bad = heartbeat.wrap_v4(message, key, timestamp=1000.0)
    assert reason(lambda: verifier().verify(bad)) is RejectReason.BAD_SCHEMA


@pytest.mark.parametrize(("datagram", "expected"), [
    (b"AHC4" + b"\x05", RejectReason.TRUNCATED),
    (b"AHC4\x03a\nb" + bytes(60), RejectReason.BAD_HEADER),
    (b"AHC4\x01a" + bytes(16) + b"\xff\xff" + bytes(40), RejectReason.TRUNCATED),
    (b"AHC4\x01a" + bytes(16) + b"\x00\x00" + bytes(40), RejectReason.TRUNCATED),
    (b"AHB4" + b"\x05", RejectReason.TRUNCATED),
    (b"AHB4\x03a\nb" + bytes(60), RejectReason.BAD_HEADER),
    (b"AHB4\x01a" + bytes(16) + b"\xff\xff\xff\xff" + bytes(40), RejectReason.TRUNCATED),
    (b"x" * 10, RejectReason.TRUNCATED),
    (b"x" * 100, RejectReason.BAD_SIGNATURE),
    (signed_v3(b"{not json"), RejectReason.NOT_JSON),
    (b"notzlib" + hmac.new(b"v3key", b"notzlib", hashlib.sha256).hexdigest().encode(),
     RejectReason.BAD_COMPRESSION),
    (signed_v3(b"0" * (heartbeat.MAX_DECOMPRESSED + 1)), RejectReason.DECOMPRESSED_TOO_LARGE),
])
def test_bad_datagrams_rejected_with_their_reason(datagram: bytes, expected) -> None:
    assert reason(lambda: verifier().verify(datagram)) is expected


def test_truncated_zlib_stream_rejected() -> None:
    payload = zlib.compress(json.dumps(body()).encode())[:-6]
    datagram = payload + hmac.new(b"v3key", payload, hashlib.sha256).hexdigest().encode()
    assert reason(lambda: verifier().verify(datagram)) is RejectReason.BAD_COMPRESSION


def test_oversized_rejected_before_any_work() -> None:
    check = HeartbeatVerifier(v3_key="v3key", max_datagram=100)
    assert reason(lambda: check.verify(b"x" * 101)) is RejectReason.OVERSIZED


def _mutated(path: list, value) -> dict:
    message = body()
    target = message
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return message


@pytest.mark.parametrize(("path", "value"), [
    (["id"], None),
    (["id"], "a\n"),
    (["seq"], "1"),
    (["seq"], True),
    (["seq"], -1),
    (["ver"], 2),
    (["listeners"], []),
    (["listeners", LISTENER, "status"], "BOGUS"),
    (["listeners", LISTENER, "stats", "tx"], 1.5),
    (["listeners", LISTENER, "stats", "rx"], -1),
    (["listeners", LISTENER, "stats", "ereq"], KeyError),
    (["listeners", LISTENER, "extra"], 1),
    (["pools", f"{POOL}:{LISTENER}", "status"], ["UP"]),
    (["pools", f"{POOL}:{LISTENER}", "members", MEMBER], "SORT OF"),
    (["pools", f"{POOL}:{LISTENER}", "members", MEMBER], {"x": 1}),
    (["pools", f"{POOL}:{LISTENER}", "members", "bad id"], "UP"),
    (["pools", "bad\nid"], {"status": "UP", "members": {}}),
    (["extra"], 1),
])
def test_wrong_types_and_values_rejected(path: list, value) -> None:
    datagram = heartbeat.wrap(_mutated(path, value), "v3key")
    assert reason(lambda: verifier().verify(datagram)) is RejectReason.BAD_SCHEMA


def test_stock_shapes_accepted() -> None:
    message = body()
    message["listeners"][LISTENER]["pools"] = {POOL: {"status": "DOWN", "members": {
        MEMBER: "no check", "m2": "DRAIN", "m3": "MAINT"}}}
    message["pools"][f"{POOL}:{LISTENER}"]["members"] = {}
    assert verifier().verify(heartbeat.wrap(message, "v3key")) == message


def test_v4_an_older_timestamp_cannot_open_a_window_for_a_replay() -> None:
    check = verifier(now=1000.0)
    first = v4(10, ts=1029.0)
    check.verify(first)
    check.verify(v4(11, ts=971.0))  # the agent's clock stepped back, still in the window
    assert reason(lambda: check.verify(first)) is RejectReason.REPLAYED


def test_v4_a_restarted_sender_counting_from_zero_waits_out_max_age() -> None:
    now = [1000.0]
    check = HeartbeatVerifier(master_key=MASTER, clock=lambda: now[0])
    check.verify(v4(500, ts=1000.0))
    now[0] = 1010.0
    assert reason(lambda: check.verify(v4(0, ts=1010.0))) is RejectReason.REPLAYED
    now[0] = 1031.0
    assert check.verify(v4(1, ts=1031.0))["seq"] == 1


def outcome(call) -> object:
    try:
        return call()
    except HeartbeatError as exc:
        return exc.reason


def v3_text(seq: int, pools: str, *, listeners: str | None = None, order: str = "ilpsv") -> bytes:
    """A version-3 payload written by hand: the keys in ``order`` (id,
    listeners, pools, seq, ver), the pools text as given."""
    listeners = listeners or json.dumps(body()["listeners"])
    parts = {"i": f'"id": "{AMP}"', "l": f'"listeners": {listeners}', "p": f'"pools": {pools}',
             "s": f'"seq": {seq}', "v": '"ver": 3'}
    return ("{" + ", ".join(parts[k] for k in order) + "}").encode()


POOLS_TEXT = json.dumps(body()["pools"])
TRICKY_V3 = [
    v3_text(2, POOLS_TEXT, order="pilsv"),
    v3_text(2, POOLS_TEXT, order="ilspv"),
    v3_text(2, POOLS_TEXT).replace(b'"pools": ', b'"pools" :\n  '),
    v3_text(2, "{}").replace(b'"ver": 3', b'"ver": 3, "pools": ' + POOLS_TEXT.encode()),
    v3_text(2, POOLS_TEXT).replace(b'"ver": 3', b'"ver": 3, "pools": {}'),
    v3_text(2, POOLS_TEXT, listeners=json.dumps({LISTENER: {**body()["listeners"][LISTENER],
                                                            "pools": body()["pools"]}})),
    v3_text(2, json.dumps(json.dumps({"pools": body()["pools"]}))),
    v3_text(2, POOLS_TEXT, order="ilpvs").replace(b'"seq": 2', b'"seq": "}"'),
    v3_text(2, POOLS_TEXT)[:-1] + b', "x": "}"}',
    v3_text(2, POOLS_TEXT)[:-1] + b'"}',
    v3_text(2, POOLS_TEXT + "}"),
    v3_text(2, POOLS_TEXT[:-1]),
    v3_text(2, POOLS_TEXT.replace('"UP"}}', '"DOWN"}}')),
    v3_text(2, POOLS_TEXT.replace('"UP"}}', '"SORT OF"}}')),
]


@pytest.mark.parametrize("raw", TRICKY_V3)
def test_v3_reuse_of_unchanged_pools_parses_as_a_full_parse(raw: bytes) -> None:
    """With the amphora's pools text remembered, every payload (other key
    orders, duplicate keys, the text inside a string, broken JSON) verifies
    or fails exactly as a stateless full parse does."""
    check = verifier()
    check.verify(signed_v3(v3_text(1, POOLS_TEXT)))
    expected = outcome(lambda: heartbeat.unwrap_v3(signed_v3(raw), b"v3key"))
    assert outcome(lambda: check.verify(signed_v3(raw))) == expected
    assert outcome(lambda: check.verify(signed_v3(raw))) == expected  # and once remembered


def test_v3_unchanged_pools_are_reused_changed_ones_parsed() -> None:
    check = verifier()
    first = check.verify(signed_v3(v3_text(1, POOLS_TEXT)))
    second = check.verify(signed_v3(v3_text(2, POOLS_TEXT)))
    assert second["seq"] == 2 and second["pools"] is first["pools"]
    changed = check.verify(signed_v3(v3_text(3, POOLS_TEXT.replace('"UP"}}', '"DRAIN"}}'))))
    assert changed["pools"][f"{POOL}:{LISTENER}"]["members"] == {MEMBER: "DRAIN"}
    bad = signed_v3(v3_text(4, POOLS_TEXT.replace('"UP"}}', '"SORT OF"}}')))
    assert reason(lambda: check.verify(bad)) is RejectReason.BAD_SCHEMA
    assert check.verify(signed_v3(v3_text(5, POOLS_TEXT)))["seq"] == 5


def test_v3_as_a_stock_agent_writes_it_reuses_unchanged_pools() -> None:
    """Octavia's build_stats_message key order (id, seq, listeners, pools,
    ver) and encode_obj (json.dumps, zlib level 9)."""
    def stock(seq: int, tx: int) -> dict:
        sent = body(seq)
        sent["listeners"][LISTENER]["stats"]["tx"] = tx
        return {"id": AMP, "seq": seq, "listeners": sent["listeners"], "pools": sent["pools"],
                "ver": 3}

    check = verifier()
    first = check.verify(signed_v3(json.dumps(stock(1, 100)).encode()))
    second = check.verify(signed_v3(json.dumps(stock(2, 250)).encode()))
    assert second == stock(2, 250)
    assert second["pools"] is first["pools"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3),
                          st.sampled_from(['"', "}", "{", ":", ",", "\\", " ", "[", "1", "a",
                                           '"pools"', '"pools":', POOLS_TEXT])),
                min_size=1, max_size=4))
def test_v3_reuse_matches_a_full_parse_after_any_edit(edits: list) -> None:
    """Random edits of a stock-ordered payload (cuts, insertions of JSON
    punctuation, of the pools key and of the remembered pools text): the
    verifier that remembers the pools text answers as a full parse does."""
    text = v3_text(2, POOLS_TEXT, order="ilpvs").decode()
    for at, cut, insert in edits:
        at %= len(text) + 1
        text = text[:at] + insert + text[at + cut:]
    check = verifier()
    check.verify(signed_v3(v3_text(1, POOLS_TEXT, order="ilpvs")))
    datagram = signed_v3(text.encode())
    expected = outcome(lambda: heartbeat.unwrap_v3(datagram, b"v3key"))
    assert outcome(lambda: check.verify(datagram)) == expected
