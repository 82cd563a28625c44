"""Agent API latency over mTLS and the agents' idle memory.

For ``GET /1.0/info`` and ``/1.0/details``: a fresh connection per request
(full mTLS handshake) and a kept-alive session. Baselines, measured in the
same run: the bare mTLS handshake against our agent (the floor any HTTPS agent
pays per new connection), and OpenStack Octavia's own amphora agent (from
``.venv-octavia``, ``make .venv-octavia``) started from the very same config
file and certificates, for which ``ratio_to_octavia`` is ours / theirs.

``slow_clients``: the same fresh-connection ``GET /1.0/info`` with 50
stalled clients kept connected (half stuck in the TLS handshake, half in the
middle of a request on a kept-alive connection; a client the agent closes at
its deadline is replaced at once), beside the idle figure of the same run.
``--no-octavia`` skips Octavia's agent.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amphora_contract import netns
from bench.common import emit, log, process_tree, pss_kib, rss_kib, summary_ms
from controller_stub.client import AgentError
from controller_stub.local_agent import Pki, start_agent

REQUESTS = 200
STALLED = 50
OCTAVIA_AGENT = Path(__file__).resolve().parents[1] / ".venv-octavia" / "bin" / "amphora-agent"


def _time(fn, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


class StalledClients:
    """Keeps ``count`` stalled clients connected to an agent until stopped."""

    def __init__(self, host: str, port: int, ctx: ssl.SSLContext, server_name: str,
                 count: int) -> None:
        self.address = (host, port)
        self.ctx = ctx
        self.server_name = server_name
        self.count = count
        self.sockets: list[socket.socket] = []
        self.replaced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, daemon=True)

    def _open(self, index: int) -> socket.socket:
        raw = socket.create_connection(self.address, timeout=10)
        if index % 2 == 0:
            raw.sendall(b"\x16\x03\x01\x02\x00\x01")  # half a ClientHello
            return raw
        tls = self.ctx.wrap_socket(raw, server_hostname=self.server_name)
        tls.sendall(b"GET /1.0/info HTTP/1.1\r\nHost: amphora\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            data += tls.recv(4096)
        tls.sendall(b"GET /1.0/info HTTP/1.1\r\nHost: amph")  # half a head
        return tls

    def __enter__(self) -> StalledClients:
        self.sockets = [self._open(i) for i in range(self.count)]
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            sock.close()

    def _keep(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select(self.sockets, [], [], 0.2)
            for sock in readable:
                try:
                    sock.setblocking(False)
                    data = sock.recv(4096)
                except (ssl.SSLWantReadError, BlockingIOError):
                    continue  # a TLS 1.3 session ticket, not a close
                except OSError:
                    data = b""
                if data:
                    continue
                index = self.sockets.index(sock)
                sock.close()
                self.sockets[index] = self._open(index)
                self.replaced += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--no-octavia", action="store_true",
                        help="skip the Octavia agent baseline")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    pki = Pki(root / "pki")
    agent = start_agent(root / "amp", pki)
    results: dict[str, dict[str, float]] = {}
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
                    if mode == "new_connection":
                        results[path.rsplit("/", 1)[1]] = stats
        _slow_clients(agent, ctx)
        time.sleep(2)  # idle
        ours = _memory(agent.process.pid)
        emit("agent_idle_memory", **ours)
    finally:
        agent.process.stop()
    log(f"agent log: {agent.process.log_file}")
    if args.no_octavia:
        log("--no-octavia: Octavia's agent baseline skipped")
    elif OCTAVIA_AGENT.exists():
        _octavia_baseline(agent, results, ours)
    else:
        log(f"no {OCTAVIA_AGENT}: run `make .venv-octavia` for the Octavia baseline")
    return 0


def _slow_clients(agent, ctx: ssl.SSLContext) -> None:  # type: ignore[no-untyped-def]
    """p99 of a fresh-connection /1.0/info, idle and with stalled clients."""
    with agent.client(keep_alive=False) as fresh:
        def info() -> None:
            fresh.request("GET", "/1.0/info")

        idle = summary_ms(_time(info, REQUESTS))
        emit("slow_clients_idle", path="/1.0/info", mode="new_connection", **idle)
        with StalledClients(agent.host, agent.port, ctx, agent.amphora_id, STALLED) as stalled:
            loaded = summary_ms(_time(info, REQUESTS))
            replaced = stalled.replaced
        emit("slow_clients", path="/1.0/info", mode="new_connection", stalled=STALLED,
             stalled_replaced=replaced, **loaded,
             p99_ratio_to_idle=round(loaded["p99_ms"] / idle["p99_ms"], 2),
             median_ratio_to_idle=round(loaded["median_ms"] / idle["median_ms"], 2))


def _memory(pid: int) -> dict[str, float]:
    pids = process_tree(pid)  # master, workers and any helper process
    return {"processes": len(pids),
            "pss_mib": round(sum(pss_kib(p) for p in pids) / 1024, 1),
            "rss_mib": round(sum(rss_kib(p) for p in pids) / 1024, 1)}


def _octavia_baseline(agent, results: dict[str, dict[str, float]],  # type: ignore[no-untyped-def]
                      ours: dict[str, float]) -> None:
    """Octavia's agent on the same port, config and certificates."""
    launcher = Path(__file__).resolve().parents[1] / "controller_stub" / "octavia_launch.py"
    # Octavia's /details reads the interfaces of its fixed namespace name
    made_namespace = not netns.exists("amphora-haproxy")
    if made_namespace:
        subprocess.run(["ip", "netns", "add", "amphora-haproxy"], check=True)
    proc = subprocess.Popen(
        ["unshare", "--mount", "--", str(OCTAVIA_AGENT.parent / "python"), str(launcher),
         str(OCTAVIA_AGENT), "--config-file", str(agent.config_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        cwd=agent.config_file.parent)
    try:
        with agent.client(keep_alive=False) as fresh:
            agent.process.wait_ready(fresh, timeout=60)
            for path in ("/1.0/info", "/1.0/details"):
                try:
                    fresh.request("GET", path)
                except AgentError as exc:
                    emit(f"octavia_agent_get_{path.rsplit('/', 1)[1]}", error=str(exc)[:200])
                    continue
                stats = summary_ms(_time(lambda p=path: fresh.request("GET", p), REQUESTS))
                name = path.rsplit("/", 1)[1]
                emit(f"octavia_agent_get_{name}", mode="new_connection", **stats,
                     ratio_ours_to_octavia=round(
                         results[name]["median_ms"] / stats["median_ms"], 2))
            reply = fresh.request("GET", "/1.0/info", headers={"Connection": "keep-alive"})
            emit("octavia_agent_keep_alive",
                 supported=reply.headers.get("Connection", "").lower() != "close")
        time.sleep(2)
        theirs = _memory(proc.pid)
        emit("octavia_agent_idle_memory", **theirs,
             ratio_ours_to_octavia=round(ours["pss_mib"] / theirs["pss_mib"], 2))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        if made_namespace:
            subprocess.run(["ip", "netns", "del", "amphora-haproxy"], check=False)


if __name__ == "__main__":
    sys.exit(main())
