"""Config reloads and runtime member changes under continuous load.

Load runs from a client namespace through the VIP, in two streams counted
separately: a new connection per request, and kept-alive connections.

- 50 config uploads + reloads through the agent; each config stamps a new
  generation in a response header, and we time PUT-to-serving.
- Baseline, same run, same amphora: the same reload done by hand outside the
  agent (write the file, ``haproxy -c``, ``reload`` on the master CLI).
- 200 runtime member changes (weights) through the ``runtime-members``
  extension; no reload may happen.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amphora_contract.peers import peer_name
from bench.common import emit, log
from bench.fabric_setup import Bench, plugged_amphora
from bench.loadgen import Load
from controller_stub import haproxy_cli
from controller_stub.octavia_style import OctaviaStyleConfig

RELOADS = 50
CHANGES = 200


def _lb_files(base_path: Path, lb_id: str) -> tuple[Path, Path, Path]:
    """(config, master socket, user/group file) where the agent keeps them (docs/haproxy.md)."""
    directory = base_path / lb_id
    return (directory / "haproxy.cfg", directory / "master.sock",
            base_path / "haproxy-default-user-group.conf")


def _config(bench: Bench, lb_id: str, listener_id: str, pool_id: str, generation: int,
            member_ids: list[str]) -> str:
    return OctaviaStyleConfig(
        amphora_id=bench.amphora.id, lb_id=lb_id, listener_id=listener_id, pool_id=pool_id,
        base_path=str(bench.base_path), bind=f"{bench.vip.ipv4}:80",
        members=[(mid, f"{m.ipv4}:80") for mid, m in zip(member_ids, bench.members,
                                                          strict=True)],
        # as our renderer emits it: idle keep-alive connections are closed
        # after their next response instead of under a client's feet
        extra_frontend=[f"http-response set-header X-Generation {generation}",
                        "option idle-close-on-response"],
    ).render()


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 2),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 2),
            "n": len(ordered)}


def main() -> int:
    with plugged_amphora() as bench:
        client = bench.client
        lb_id, listener_id, pool_id = (str(uuid.uuid4()) for _ in range(3))
        member_ids = [str(uuid.uuid4()) for _ in bench.members]
        client.upload_haproxy(bench.amphora.id, lb_id,
                              _config(bench, lb_id, listener_id, pool_id, 0, member_ids))
        client.lb_action(lb_id, "start")
        vip = str(bench.vip.ipv4)
        new_conn = Load(bench.user.namespace, vip, 80, keep_alive=False).start()
        kept = Load(bench.user.namespace, vip, 80, keep_alive=True).start()
        probe = Load(bench.user.namespace, vip, 80, keep_alive=False).start()
        time.sleep(1)
        for load in (new_conn, kept):
            load.reset()

        # -- reloads through the agent
        api, serving = [], []
        for generation in range(1, RELOADS + 1):
            text = _config(bench, lb_id, listener_id, pool_id, generation, member_ids)
            start = time.perf_counter()
            client.upload_haproxy(bench.amphora.id, lb_id, text)
            client.lb_action(lb_id, "reload")
            api.append(time.perf_counter() - start)
            serving.append(probe.wait_generation(generation, start))
        agent_new, agent_kept = new_conn.stats, kept.stats
        emit("reload_agent", reloads=RELOADS, upload_and_reload=_ms(api),
             put_to_serving=_ms(serving),
             new_connection={"ok": agent_new.ok, "failed": agent_new.failed},
             keep_alive={"ok": agent_kept.ok, "failed": agent_kept.failed})

        # -- baseline: the same reload by hand, outside the agent
        for load in (new_conn, kept):
            load.reset()
        config, master, user_group = _lb_files(bench.base_path, lb_id)
        base_serving = []
        for i in range(1, RELOADS + 1):
            generation = RELOADS + i
            text = _config(bench, lb_id, listener_id, pool_id, generation, member_ids)
            start = time.perf_counter()
            staged = config.with_suffix(".bench")
            staged.write_text(text)
            staged.replace(config)
            subprocess.run(["haproxy", "-c", "-f", str(config), "-f", str(user_group),
                            "-L", peer_name(bench.amphora.id)], capture_output=True, check=True)
            haproxy_cli.reloads(master)  # the master answers between re-execs
            haproxy_cli.command(master, "reload")
            base_serving.append(probe.wait_generation(generation, start))
        base_new, base_kept = new_conn.stats, kept.stats
        emit("reload_baseline_haproxy_c_and_master_reload", reloads=RELOADS,
             put_to_serving=_ms(base_serving),
             new_connection={"ok": base_new.ok, "failed": base_new.failed},
             keep_alive={"ok": base_kept.ok, "failed": base_kept.failed})
        emit("reload_ratio_agent_to_baseline",
             median_ratio=round(statistics.median(serving) / statistics.median(base_serving), 2))

        # -- runtime member changes
        for load in (new_conn, kept):
            load.reset()
        reloads_before = haproxy_cli.reloads(master)
        backend = f"{pool_id}:{listener_id}"
        latencies = []
        for i in range(CHANGES):
            start = time.perf_counter()
            applied = client.set_server(lb_id, backend, member_ids[i % len(member_ids)],
                                        weight=1 + (i % 5))
            latencies.append(time.perf_counter() - start)
            if applied != "runtime":
                raise RuntimeError(f"change {i} needed a {applied}")
        emit("runtime_member_changes", changes=CHANGES, latency=_ms(latencies),
             reloads=haproxy_cli.reloads(master) - reloads_before,
             new_connection={"ok": new_conn.stats.ok, "failed": new_conn.stats.failed},
             keep_alive={"ok": kept.stats.ok, "failed": kept.stats.failed})
        for name, load in (("new_connection", new_conn), ("keep_alive", kept)):
            log(f"{name} errors over the whole run: {load.stop().errors}")
        probe.stop()
        # the same changes with no load on this 2-core machine: the agent's own cost
        idle = []
        for i in range(CHANGES):
            start = time.perf_counter()
            client.set_server(lb_id, backend, member_ids[i % len(member_ids)], weight=1 + i % 5)
            idle.append(time.perf_counter() - start)
        emit("runtime_member_changes_without_load", changes=CHANGES, latency=_ms(idle))
        client.delete_listener(lb_id)
    log("reload bench done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
