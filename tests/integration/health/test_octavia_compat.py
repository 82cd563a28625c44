"""Version-3 heartbeats both ways with stock Octavia's own code (the
``octavia`` package from PyPI in ``.venv-octavia``, `make .venv-octavia`),
driven through bench/octavia_heartbeat_peer.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from amphora_contract import heartbeat
from controller_stub import health
from controller_stub.health import HeartbeatVerifier, RejectReason
from controller_stub.health_listener import HealthListener

REPO = Path(__file__).resolve().parents[3]
OCTAVIA_VENV = Path(os.environ.get("AMPHORA_OCTAVIA_VENV", REPO / ".venv-octavia"))
OCTAVIA_PYTHON = OCTAVIA_VENV / "bin" / "python"
PEER = REPO / "bench" / "octavia_heartbeat_peer.py"
KEY = "insecure-heartbeat-key"
AMP = "5e0bd2f6-0d0b-4f2a-9a2b-3c1c9b1a7e01"
LISTENER = "0b3c1a6e-8a5c-4c7f-9d0e-2f1b7a9c4d11"
POOL = "7f3a2b1c-1d2e-4f5a-8b9c-0d1e2f3a4b5c"


def stock_message(seq: int) -> dict:
    """What Octavia's health_daemon.build_stats_message produces for one listener."""
    return {"id": AMP, "seq": seq, "ver": 3,
            "listeners": {LISTENER: {"status": "OPEN", "stats": {
                "tx": 1200, "rx": 800, "conns": 3, "totconns": 40, "ereq": 1}}},
            "pools": {f"{POOL}:{LISTENER}": {"status": "UP", "members": {
                "m-1": "UP", "m-2": "DOWN", "m-3": "no check", "m-4": "DRAIN", "m-5": "MAINT"}}}}


@pytest.fixture(scope="module")
def octavia_python() -> Path:
    if not OCTAVIA_PYTHON.exists():
        raise RuntimeError(f"no {OCTAVIA_PYTHON}: run 'make .venv-octavia'")
    return OCTAVIA_PYTHON


def peer(octavia_python: Path, *args: str, stdin: str) -> list[str]:
    done = subprocess.run([str(octavia_python), str(PEER), *args], input=stdin, text=True,
                          capture_output=True, timeout=60, check=True)
    return done.stdout.splitlines()


def test_ours_decode_in_octavias_unwrap_envelope(octavia_python: Path) -> None:
    datagrams = [heartbeat.wrap(stock_message(seq), KEY) for seq in (1, 2)]
    datagrams.append(heartbeat.wrap(stock_message(3), "another-key"))
    lines = peer(octavia_python, "unwrap", KEY, stdin="".join(d.hex() + "\n" for d in datagrams))
    assert [json.loads(line) for line in lines] == [
        stock_message(1), stock_message(2), {"error": "InvalidHMACException"}]


def test_ours_received_by_octavias_udp_status_getter(octavia_python: Path) -> None:
    receiver = subprocess.Popen([str(octavia_python), str(PEER), "recv", KEY, "127.0.0.1", "2"],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for seq in (7, 8):
                sock.sendto(heartbeat.wrap(stock_message(seq), KEY), ("127.0.0.1", port))
        received = [json.loads(receiver.stdout.readline()) for _ in range(2)]
        assert receiver.wait(timeout=30) == 0
    finally:
        receiver.kill()
        receiver.wait()
    for entry, seq in zip(received, (7, 8), strict=True):
        assert entry["source"] == "127.0.0.1"
        assert entry["message"].pop("recv_time") > 0
        assert entry["message"] == stock_message(seq)


def test_octavias_wrap_envelope_decodes_in_ours(octavia_python: Path) -> None:
    datagram = bytes.fromhex(peer(octavia_python, "wrap", KEY,
                                  stdin=json.dumps(stock_message(5)))[0])
    assert health.unwrap(datagram, KEY) == stock_message(5)
    with pytest.raises(health.HeartbeatError) as info:
        health.unwrap(datagram, "another-key")
    assert info.value.reason is RejectReason.BAD_SIGNATURE

    inbox: list[tuple[dict, str]] = []
    verifier = HeartbeatVerifier(v3_key=KEY)
    with HealthListener(verifier, lambda m, s: inbox.append((m, s)),
                        addresses=[("::1", 0)]) as listener:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.sendto(datagram, listener.bound[0])
        deadline = time.monotonic() + 10
        while not inbox and time.monotonic() < deadline:
            time.sleep(0.01)
    assert inbox == [(stock_message(5), "::1")]
