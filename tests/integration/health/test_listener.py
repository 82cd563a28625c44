"""The controller's health listener on real UDP sockets (IPv4 and IPv6 loopback)."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator

import pytest

from amphora_contract import heartbeat
from controller_stub.health import HeartbeatVerifier
from controller_stub.health_listener import HealthListener

V3_KEY = "shared-key"
MASTER = "master-key"
AMP = "5e0bd2f6-0d0b-4f2a-9a2b-3c1c9b1a7e01"
LISTENER = "0b3c1a6e-8a5c-4c7f-9d0e-2f1b7a9c4d11"


def body(seq: int, ver: int = 3, amphora_id: str = AMP) -> dict:
    return heartbeat.message(amphora_id, seq, {LISTENER: {"status": "OPEN", "stats": {
        "tx": seq, "rx": 2, "conns": 0, "totconns": 1, "ereq": 0}}},
        {f"p1:{LISTENER}": {"status": "UP", "members": {"m1": "UP", "m2": "DRAIN"}}}, version=ver)


def v4(seq: int, ts: float | None = None, master: str = MASTER) -> bytes:
    return heartbeat.wrap_v4(body(seq, 4), heartbeat.derive_amphora_key(master, AMP),
                             timestamp=ts)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[dict, str]] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, message: dict, source: str) -> None:
        self.release.wait()
        self.messages.append((message, source))


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def listener(inbox: Inbox) -> Iterator[HealthListener]:
    verifier = HeartbeatVerifier(v3_key=V3_KEY, master_key=MASTER, max_datagram=8192)
    with HealthListener(verifier, inbox, addresses=[("127.0.0.1", 0), ("::1", 0)],
                        queue_size=4) as running:
        yield running


def send(listener: HealthListener, datagram: bytes, family: int = socket.AF_INET) -> None:
    host, port = next(a for a in listener.bound if (":" in a[0]) == (family == socket.AF_INET6))
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.sendto(datagram, (host, port))


def test_ipv4_and_ipv6_both_received(listener: HealthListener, inbox: Inbox) -> None:
    send(listener, heartbeat.wrap(body(1), V3_KEY), socket.AF_INET)
    send(listener, v4(2), socket.AF_INET6)
    wait_for(lambda: len(inbox.messages) == 2, "two heartbeats")
    by_source = {source: message for message, source in inbox.messages}
    assert by_source["127.0.0.1"] == body(1)
    assert by_source["::1"] == body(2, 4)
    assert listener.bound[0][1] == listener.bound[1][1]


def _signed_v3(payload: bytes, key: str = V3_KEY) -> bytes:
    return payload + hmac.new(key.encode(), payload, hashlib.sha256).hexdigest().encode()


def test_every_bad_class_is_counted_and_good_ones_still_arrive(
        listener: HealthListener, inbox: Inbox) -> None:
    good = heartbeat.wrap(body(1), V3_KEY)
    forged = bytearray(good)
    forged[5] ^= 0x01
    bad = {
        "bad_signature": [bytes(forged), heartbeat.wrap(body(1), "wrong-key"),
                          v4(3, master="wrong-master")],
        "truncated": [good[:40]],
        "oversized": [b"x" * 9000],
        "decompressed_too_large": [_signed_v3(zlib.compress(b" " * (2 << 20), 9))],
        "not_json": [_signed_v3(zlib.compress(b"{'id': 1}"))],
        "bad_schema": [_signed_v3(zlib.compress(b'{"id": 1, "seq": "x"}')),
                       heartbeat.wrap(dict(body(1), seq=1.5), V3_KEY)],
        "stale": [v4(4, ts=time.time() - 3600)],
    }
    send(listener, v4(5, ts=time.time()))
    wait_for(lambda: listener.counters()["accepted"] == 1, "the first v4 heartbeat")
    bad["replayed"] = [v4(5, ts=time.time())]
    for datagrams in bad.values():
        for datagram in datagrams:
            send(listener, datagram)
            send(listener, datagram, socket.AF_INET6)
    send(listener, good)
    send(listener, v4(6), socket.AF_INET6)
    total = 2 * sum(map(len, bad.values())) + 3
    wait_for(lambda: listener.counters()["received"] == total, "every datagram")
    counts = listener.counters()
    for reason, datagrams in bad.items():
        expected = 2 * len(datagrams)
        if reason == "replayed":
            expected = 2  # both copies of seq 5 again
        assert counts[reason] == expected, reason
    assert counts["accepted"] == 3
    wait_for(lambda: len(inbox.messages) == 3, "the good heartbeats delivered")
    # the v3 one came over IPv4, the last v4 one over IPv6: two sockets, no order between them
    assert sorted(m["seq"] for m, _ in inbox.messages) == [1, 5, 6]
    assert counts["bad_compression"] == 0 and counts["queue_full"] == 0


def test_a_full_queue_drops_and_counts(listener: HealthListener, inbox: Inbox) -> None:
    inbox.release.clear()  # the callback blocks: the queue (4) fills up
    for seq in range(1, 11):
        send(listener, heartbeat.wrap(body(seq), V3_KEY))
    wait_for(lambda: listener.counters()["received"] == 10, "ten datagrams")
    counts = listener.counters()
    # four queued, at most one held by the blocked callback
    assert counts["accepted"] in (4, 5)
    assert counts["queue_full"] == 10 - counts["accepted"]
    inbox.release.set()
    wait_for(lambda: len(inbox.messages) == counts["accepted"], "the queued heartbeats")
    send(listener, heartbeat.wrap(body(11), V3_KEY))
    wait_for(lambda: len(inbox.messages) == counts["accepted"] + 1, "a heartbeat after the drops")


def test_a_failing_callback_does_not_stop_delivery(inbox: Inbox) -> None:
    seen: list[int] = []

    def callback(message: dict, source: str) -> None:
        seen.append(message["seq"])
        if message["seq"] == 1:
            raise RuntimeError("consumer bug")

    verifier = HeartbeatVerifier(v3_key=V3_KEY)
    with HealthListener(verifier, callback, addresses=[("127.0.0.1", 0)]) as running:
        send(running, heartbeat.wrap(body(1), V3_KEY))
        send(running, heartbeat.wrap(body(2), V3_KEY))
        wait_for(lambda: seen == [1, 2], "both heartbeats")


def test_a_port_in_use_fails_start_and_leaves_no_socket(inbox: Inbox) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken:
        taken.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        taken.bind(("::1", 0))
        port = taken.getsockname()[1]
        listener = HealthListener(HeartbeatVerifier(v3_key=V3_KEY), inbox,
                                  addresses=[("127.0.0.1", port), ("::1", port)])
        with pytest.raises(OSError):
            listener.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # the IPv4 socket it had bound was closed
