"""Agent API latency over mTLS and the agent's idle memory.

For ``GET /1.0/info`` and ``/1.0/details``: a fresh connection per request
(full mTLS handshake) and a kept-alive session. Baseline, measured in the same
run against the same agent: the bare mTLS handshake (connect, handshake,
close) — the floor any HTTPS agent pays per new connection; ``ratio`` says how
far above it a whole request is.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, log, process_tree, pss_kib, rss_kib, summary_ms
from tests.support.agents import Pki, start_agent

REQUESTS = 200


def _time(fn, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    pki = Pki(root / "pki")
    agent = start_agent(root / "amp", pki)
    try:
        ctx = agent.client_context()

        def handshake() -> None:
            with socket.create_connection((agent.host, agent.port)) as raw:
                with ctx.wrap_socket(raw, server_hostname=agent.amphora_id):
                    pass

        baseline = summary_ms(_time(handshake, REQUESTS))
        emit("mtls_handshake_baseline", **baseline)
        with agent.client(keep_alive=False) as fresh, agent.client() as kept:
            for path in ("/1.0/info", "/1.0/details"):
                fresh.request("GET", path)  # warm caches once
                for mode, client in (("new_connection", fresh), ("keep_alive", kept)):
                    stats = summary_ms(_time(lambda c=client, p=path: c.request("GET", p),
                                             REQUESTS))
                    emit(f"agent_get_{path.rsplit('/', 1)[1]}", mode=mode, **stats,
                         ratio_to_handshake=round(stats["median_ms"] / baseline["median_ms"], 2))
        time.sleep(2)  # idle
        pids = process_tree(agent.process.pid)
        agent_pids = [p for p in pids if "amphora-agent" in _cmdline(p)]
        emit("agent_idle_memory", processes=len(agent_pids),
             pss_mib=round(sum(pss_kib(p) for p in agent_pids) / 1024, 1),
             rss_mib=round(sum(rss_kib(p) for p in agent_pids) / 1024, 1))
    finally:
        agent.process.stop()
    log(f"agent log: {agent.process.log_file}")
    return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
