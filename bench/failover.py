"""ACTIVE_STANDBY failover: outage per fault, our default keepalived config
against one shaped like Octavia's default, measured in the same run.

On the local fabric (amphorae as namespaces running the real agent), one
ACTIVE_STANDBY pair per config shape (controller_stub/active_standby.py).
A client namespace opens a new HTTP connection to the VIP every 5 ms; the
outage of a fault is the time from the last good response before the first
failed probe to the first good response of a probe started after it. Five
runs of each fault, always on the amphora holding the VIP:

- ``links_down``: its VIP and management links lose carrier;
- ``old_master_returns``: those links come back (failed probes counted);
- ``keepalived_stop``: ``PUT /1.0/vrrp/stop`` (clean stop);
- ``keepalived_sigkill``: keepalived SIGKILLed; time until the VIP is on
  exactly one amphora (and the outage);
- ``haproxy_sigkill``: HAProxy's master SIGKILLed.

Then 60 s of full load (one connection-per-request stream per core) counting
VIP transitions, which should be none. One JSON object per result.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable

from bench.common import emit, log
from bench.loadgen import Load
from controller_stub.active_standby import Pair, Prober, build_pair, outage
from controller_stub.compute.local import LocalFabric
from controller_stub.local_agent import short_tmpdir

RUNS = int(os.environ.get("FAILOVER_RUNS", "5"))
LOAD_SECONDS = float(os.environ.get("FAILOVER_LOAD_SECONDS", "60"))
# After a fault, watch this long for the last failed probe to be followed by good ones.
SETTLE = 2.0


def _stable(pair: Pair, seconds: float, timeout: float = 30.0) -> int:
    """Wait until one amphora has held the VIP for ``seconds``; its index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = pair.wait_single_holder(timeout=max(0.1, deadline - time.monotonic()))
        if pair.wait(lambda h=holder: pair.holders() != [h], timeout=seconds) is None:
            return holder
    raise RuntimeError(f"the VIP never settled: {pair.holders()}")


def _keepalived_running(pair: Pair, index: int) -> bool:
    return pair.sides[index].pid("vrrp") is not None


def _measure(pair: Pair, prober: Prober, fault: Callable[[int], None],
             restore: Callable[[int], None], settle: float) -> tuple[float, float | None]:
    """(outage, seconds until exactly the other amphora holds the VIP)."""
    holder = _stable(pair, settle)
    other = 1 - holder
    start = time.monotonic()
    fault(holder)
    single = pair.wait(lambda: pair.holders() == [other], timeout=30.0, interval=0.002)
    prober.wait_good(time.monotonic(), timeout=30.0)
    time.sleep(SETTLE)  # probes after the recovery, so the outage has an end
    result = outage(list(prober.probes), start)
    restore(holder)
    return result, single


def _summary(samples: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(samples), 3), "max_s": round(max(samples), 3),
            "runs": [round(s, 3) for s in samples]}


def run_shape(fabric: LocalFabric, shape: str, members: list, user_ns: str) -> None:
    pair = build_pair(fabric, members, shape=shape, virtual_router_id=10 + len(fabric.amphorae))
    # How long a returning amphora needs to settle as backup (one config's adverts).
    settle = 1.0 if shape == "ours" else 4.0
    try:
        with Prober(user_ns, pair.vip) as prober:
            if not prober.wait_good(time.monotonic() - 1, timeout=15):
                raise RuntimeError("no traffic through the VIP")
            links, returns = [], []
            for _ in range(RUNS):
                returned: list[int] = []

                def links_up(index: int, returned: list[int] = returned) -> None:
                    back = time.monotonic()
                    pair.links_up(index)
                    time.sleep(settle + 2.0)  # the old master comes back and may preempt
                    returned.append(prober.failed(back))

                value, _single = _measure(pair, prober, pair.links_down, links_up, settle)
                links.append(value)
                returns.extend(returned)
            emit("failover", shape=shape, fault="links_down", **_summary(links))
            emit("failover", shape=shape, fault="old_master_returns",
                 failed_requests=sum(returns), runs=returns)

            def restart(index: int) -> None:
                pair.keepalived(index, "start")
                pair.wait(lambda: _keepalived_running(pair, index))

            stops = [_measure(pair, prober, lambda i: pair.keepalived(i, "stop"), restart,
                              settle)[0] for _ in range(RUNS)]
            emit("failover", shape=shape, fault="keepalived_stop", **_summary(stops))

            kills, singles = [], []
            for _ in range(RUNS):
                value, single = _measure(
                    pair, prober, lambda i: pair.kill_keepalived(i, signal.SIGKILL), restart,
                    settle)
                kills.append(value)
                singles.append(single if single is not None else float("inf"))
            emit("failover", shape=shape, fault="keepalived_sigkill",
                 vip_on_one_amphora=_summary(singles), **_summary(kills))

            def haproxy_start(index: int) -> None:
                pair.start_haproxy(index)

            haproxy = [_measure(pair, prober, pair.kill_haproxy, haproxy_start, settle)[0]
                       for _ in range(RUNS)]
            emit("failover", shape=shape, fault="haproxy_sigkill", **_summary(haproxy))

        _stable(pair, settle)
        transitions, holder = 0, pair.holders()
        loads = [Load(user_ns, pair.vip, 80, keep_alive=False).start()
                 for _ in range(os.cpu_count() or 2)]
        end = time.monotonic() + LOAD_SECONDS
        while time.monotonic() < end:
            now = pair.holders()
            if now != holder:
                transitions += 1
                holder = now
            time.sleep(0.05)
        stats = [load.stop() for load in loads]
        emit("failover", shape=shape, fault="none_full_load", seconds=LOAD_SECONDS,
             vip_transitions=transitions, requests=sum(s.ok for s in stats),
             failed_requests=sum(s.failed for s in stats))
    finally:
        pair.delete()


def main() -> int:
    if os.geteuid() != 0:
        log("bench/failover.py needs root (network namespaces)")
        return 2
    workdir = short_tmpdir()
    fabric = LocalFabric(workdir)
    try:
        members = [fabric.create_member("member", name=f"member-{i}") for i in (1, 2)]
        user = fabric.create_client("client")
        for shape in ("ours", "octavia"):
            log(f"failover: {shape} config")
            run_shape(fabric, shape, members, user.namespace)
        return 0
    finally:
        fabric.teardown()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
