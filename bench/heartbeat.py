"""Heartbeat receive path: datagrams received, verified and parsed per second
on one core, ours beside stock Octavia's ``UDPStatusGetter.dorecv`` in the
same run (docs/heartbeat.md).

The message has 10 listeners x 10 pools x 10 members. Each receiver runs as
its own process pinned to CPU 0 (taskset); this process, pinned to CPU 1,
sends every datagram into the receiver's socket (its buffer forced large, so
none is dropped), and the receiver times its work from the first datagram to
the last: the process's CPU time (what the rates and ratios use: on a shared
host the wall clock counts other processes' turns on the core too) and the
wall clock (``wall_per_second``, for reference). Variants:

- ``octavia_v3``: Octavia's own ``dorecv`` (recvfrom + ``unwrap_envelope``:
  HMAC, zlib, JSON) in ``.venv-octavia``; version-3 datagrams;
- ``ours_v3``: our ``HealthListener`` (recvfrom, HMAC, bounded inflate, JSON,
  strict schema, hand-over, callback) on the same version-3 datagrams: the
  counters change in every datagram, the pools do not (a stock agent's
  steady state);
- ``ours_v4_steady``: version 4 as a healthy LB sends it: counters change in
  every datagram, pools and members do not;
- ``ours_v4_worst``: version 4 with a member status changed in every
  datagram (each datagram also restores the previous one's: two pools
  sections differ from the last datagram).

Prints one JSON object per variant and round (``ratio_to_octavia``: to
Octavia's rate in that round), then a summary per variant with medians and
``ratio_to_octavia`` of the medians. Run: ``make .venv-octavia`` then
``.venv/bin/python bench/heartbeat.py [--rounds N] [--datagrams N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amphora_contract import heartbeat
from bench.common import emit, log
from controller_stub.health import HeartbeatVerifier
from controller_stub.health_listener import HealthListener

REPO = Path(__file__).resolve().parents[1]
OCTAVIA_PYTHON = REPO / ".venv-octavia" / "bin" / "python"
PEER = REPO / "bench" / "octavia_heartbeat_peer.py"
V3_KEY = "bench-heartbeat-key"
MASTER = "bench-master-key"
RECEIVER_CPU, SENDER_CPU = "0", 1
RECEIVE_BUFFER = 256 << 20
# Datagrams are wrapped before the receiver starts; the window only has to
# cover the run.
MAX_AGE = 600.0


def build_message(seq: int, *, version: int = 3, flip: int | None = None) -> dict[str, Any]:
    """10 listeners x 10 pools x 10 members, the same ids every time."""
    rng = random.Random(11)

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128)))

    amphora_id = new_id()
    listeners: dict[str, Any] = {}
    pools: dict[str, Any] = {}
    for _ in range(10):
        listener_id = new_id()
        listeners[listener_id] = {"status": "OPEN", "stats": {
            "tx": 1_000_000 + seq * 7919, "rx": 250_000 + seq * 104_729,
            "conns": seq % 97, "totconns": 1000 + seq, "ereq": seq % 3}}
        for _ in range(10):
            pools[f"{new_id()}:{listener_id}"] = {
                "status": "UP", "members": {new_id(): "UP" for _ in range(10)}}
    if flip is not None:
        members = list(pools.values())[flip % 100]["members"]
        members[next(iter(members))] = "DOWN"
    return heartbeat.message(amphora_id, seq, listeners, pools, version=version)


def datagrams(variant: str, count: int) -> list[bytes]:
    if variant in ("octavia_v3", "ours_v3"):
        return [heartbeat.wrap(build_message(seq), V3_KEY) for seq in range(1, count + 1)]
    amphora_id = build_message(0)["id"]
    key = heartbeat.derive_amphora_key(MASTER, amphora_id)
    changing = variant == "ours_v4_worst"
    return [heartbeat.wrap_v4(build_message(seq, version=4, flip=seq if changing else None), key)
            for seq in range(1, count + 1)]


# the receiver side (a subprocess pinned to one core)

def receive(count: int) -> None:
    """Our listener: print the port, take ``count`` datagrams, print timing."""
    done = threading.Event()
    times: list[tuple[float, float]] = []

    def delivered(message: dict[str, Any], source: str) -> None:
        times.append((time.perf_counter(), time.process_time()))
        if len(times) == count:
            done.set()

    verifier = HeartbeatVerifier(v3_key=V3_KEY, master_key=MASTER, max_age=MAX_AGE)
    with HealthListener(verifier, delivered, addresses=[("127.0.0.1", 0)], queue_size=count,
                        receive_buffer=RECEIVE_BUFFER) as listener:
        print(listener.bound[0][1], flush=True)
        done.wait(timeout=300)
        counters = listener.counters()
    rejected = {k: v for k, v in counters.items()
                if v and k not in ("received", "accepted")}
    print(json.dumps({"datagrams": len(times) - 1, "seconds": times[-1][0] - times[0][0],
                      "cpu_seconds": times[-1][1] - times[0][1], "rejected": rejected}),
          flush=True)


# the driver

def run(variant: str, count: int) -> dict[str, Any]:
    payloads = datagrams(variant, count)
    if variant == "octavia_v3":
        command = [str(OCTAVIA_PYTHON), str(PEER), "bench", V3_KEY, "127.0.0.1", str(count)]
    else:
        command = [sys.executable, __file__, "--receive", str(count)]
    receiver = subprocess.Popen(["taskset", "-c", RECEIVER_CPU, *command], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for payload in payloads:
                sock.sendto(payload, ("127.0.0.1", port))
        result = json.loads(receiver.stdout.readline())
        receiver.wait(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    rate = result["datagrams"] / result["cpu_seconds"]
    return {"variant": variant, "datagrams": result["datagrams"],
            "datagram_bytes": len(payloads[0]), "per_cpu_second": round(rate, 1),
            "cpu_us_per_datagram": round(1e6 / rate, 1),
            "wall_per_second": round(result["datagrams"] / result["seconds"], 1),
            "rejected": result.get("rejected", {})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--datagrams", type=int, default=1500)
    parser.add_argument("--receive", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:
        receive(args.receive)
        return 0
    if not OCTAVIA_PYTHON.exists():
        log(f"no {OCTAVIA_PYTHON}: run `make .venv-octavia` for the Octavia baseline")
        return 1
    os.sched_setaffinity(0, {SENDER_CPU})
    variants = ["octavia_v3", "ours_v3", "ours_v4_steady", "ours_v4_worst"]
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for round_no in range(1, args.rounds + 1):
        for variant in variants:
            result = run(variant, args.datagrams)
            rates[variant].append(result["per_cpu_second"])
            emit("heartbeat_receive", round=round_no, message="10x10x10",
                 ratio_to_octavia=round(result["per_cpu_second"] / rates["octavia_v3"][-1], 2),
                 **result)
    baseline = statistics.median(rates["octavia_v3"])
    for variant in variants:
        median = statistics.median(rates[variant])
        emit("heartbeat_receive_summary", variant=variant,
             median_per_cpu_second=round(median, 1),
             ratio_to_octavia=round(median / baseline, 2), rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
