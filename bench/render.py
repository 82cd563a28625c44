"""Benchmark: model validation, HAProxy config render time and ``haproxy -c`` time by LB size.

Sizes: 1, 10, 100 listeners x 10, 100 members per pool (each listener has its
own pool with an HTTP health monitor). Prints one JSON object per size on
stdout, with growth factors against the next smaller size measured in the same
run (x10 listeners, x10 members), so the numbers compare like with like on
whatever machine runs it. Bounded: a few repetitions, well under two minutes.

    .venv/bin/python bench/render.py
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from haproxy_templates import LoadBalancer, RenderOptions, Target, peer_name, render

LB_ID = "0b7e2d3c-1a2b-4c5d-8e9f-00000000b001"
AMP_ID = "a0000000-0000-4000-8000-00000000b00a"
LISTENERS = (1, 10, 100)
MEMBERS = (10, 100)
RENDER_REPEATS = 5
CHECK_REPEATS = 3


def _uid(kind: int, n: int) -> str:
    return f"{kind:08x}-0000-4000-8000-{n:012x}"


def build(listeners: int, members: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": LB_ID, "vip_address": "203.0.113.10",
                           "amphorae": [{"id": AMP_ID}], "listeners": [], "pools": []}
    for i in range(listeners):
        pool_id = _uid(2, i)
        doc["listeners"].append({"id": _uid(1, i), "protocol": "HTTP",
                                 "protocol_port": 10000 + i, "default_pool_id": pool_id,
                                 "insert_headers": {"X-Forwarded-For": "true"}})
        doc["pools"].append({
            "id": pool_id, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "healthmonitor": {"id": _uid(3, i), "type": "HTTP", "delay": 5, "timeout": 3,
                              "max_retries": 3, "url_path": "/health"},
            "members": [{"id": _uid(4, i * 1000 + m),
                         "address": f"10.{i % 250}.{m // 250}.{m % 250 + 1}",
                         "protocol_port": 8080} for m in range(members)],
        })
    return doc


def _ratio(now: float, before: float | None) -> float | None:
    return round(now / before, 2) if before else None


def main() -> int:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    target = Target.detect()
    base = Path(tempfile.mkdtemp(prefix="hbench", dir="/tmp"))
    (base / LB_ID).mkdir()
    (base / LB_ID / "servers-state").write_text("1\n")
    options = RenderOptions(base_path=str(base))
    results: dict[tuple[int, int], dict[str, Any]] = {}
    try:
        for members in MEMBERS:
            for listeners in LISTENERS:
                doc = build(listeners, members)
                start = time.perf_counter()
                lb = LoadBalancer.from_dict(doc)
                model_ms = (time.perf_counter() - start) * 1000
                render(lb, amphora_id=AMP_ID, target=target, options=options)  # warm caches
                times = []
                for _ in range(RENDER_REPEATS):
                    start = time.perf_counter()
                    text = render(lb, amphora_id=AMP_ID, target=target, options=options)
                    times.append(time.perf_counter() - start)
                cfg = base / LB_ID / "haproxy.cfg"
                cfg.write_text(text)
                checks = []
                for _ in range(CHECK_REPEATS):
                    start = time.perf_counter()
                    proc = subprocess.run([haproxy, "-c", "-q", "-f", str(cfg), "-L",
                                           peer_name(AMP_ID)], capture_output=True,
                                          text=True, timeout=60, check=False)
                    checks.append(time.perf_counter() - start)
                    if proc.returncode != 0:
                        print(proc.stdout + proc.stderr, file=sys.stderr)
                        return 1
                render_ms = statistics.median(times) * 1000
                check_ms = statistics.median(checks) * 1000
                prev_l = results.get((listeners // 10, members))
                prev_m = results.get((listeners, members // 10))
                result = {
                    "bench": "render",
                    "listeners": listeners,
                    "members_per_pool": members,
                    "servers": listeners * members,
                    "config_bytes": len(text),
                    "model_ms": round(model_ms, 2),
                    "render_ms": round(render_ms, 2),
                    "haproxy_check_ms": round(check_ms, 2),
                    "render_growth_x10_listeners": _ratio(render_ms,
                                                          prev_l and prev_l["render_ms"]),
                    "check_growth_x10_listeners": _ratio(check_ms,
                                                         prev_l and prev_l["haproxy_check_ms"]),
                    "render_growth_x10_members": _ratio(render_ms,
                                                        prev_m and prev_m["render_ms"]),
                    "check_growth_x10_members": _ratio(check_ms,
                                                       prev_m and prev_m["haproxy_check_ms"]),
                    "haproxy_version": target.haproxy_version,
                    "cpu_count": target.cpu_count,
                }
                results[(listeners, members)] = result
                print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
