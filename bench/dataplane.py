"""Requests/s and p99 through an amphora: our rendering, Octavia's, and a hand-tuned config.

One load balancer (an HTTP listener and a TERMINATED_HTTPS listener with one
RSA-2048 certificate, each with a pool holding the same member) is rendered
by each config below and served on the same fabric, amphora and HAProxy
binary. Each config runs as its own load balancer on its own two ports
(80/443, 1080/1443, ...), all of them at once, so the benchmark switches
config by switching port, seconds apart and without restarting anything:

- ``ours``: ``haproxy_templates.render`` for the amphora (Target from its
  ``/1.0/details``, the modelled memory below);
- ``octavia``: Octavia's own ``combined_listeners`` templater (``.venv-octavia``,
  ``bench/octavia_render.py``) for the same LB, with the same certificate (as
  the crt-list its driver uploads) and the same ``/1.0/details``;
- ``hand_tuned``: ``bench/hand_tuned.cfg``, written for this benchmark;
- ``ours_again``: our rendering a second time, as a control (``--no-control``
  leaves it out): its ratio to ``ours`` is what this run cannot tell apart.

All three log every request to the same syslog sink (a UDP socket in the
amphora's namespace), as an amphora logs to its rsyslog.

Cases: HTTP keep-alive, a new connection per request, TLS 1.3 keep-alive
(wrk); full TLS handshakes (``openssl s_time -new``: no session reuse, one
connection at a time per process, 4 processes; s_time reports no latency, so
p99 is null); TLS with resumption (wrk with ``Connection: close``: wrk resumes
every session with the server's TLS 1.3 ticket); HTTP/2 over TLS (h2load, p99
from its per-request log). During the two handshake cases HAProxy's ``show
info`` is sampled: ``full_handshake_pct`` = key-exchange rate / TLS
connection rate, so what each case measured is on record.

Threads: 1 and 2, every config started cold for each. At 1 thread every
config pins HAProxy to CPU 1 (ours and Octavia's render ``cpu-map`` so for a
2-vCPU amphora that leaves CPU 0 to the system) and the load generators and
the member run pinned to CPU 0 with ``taskset``. At 2 threads HAProxy uses
both CPUs and nothing is pinned (two cores cannot keep them apart);
Octavia's templater emits no ``nbthread`` then (no TuneD profile reported),
so HAProxy starts one thread per CPU.

This machine is a shared VM: the same config, run twice a few seconds apart,
can differ by 15 % in requests/s and in CPU per request (the host's other
tenants; there is no hardware counter to count instructions instead). So the
configs take turns case by case: in each round every case runs once per
config, back to back, in an order rotated each round and case, so each config
takes every place in turn. ``ratio_to_octavia`` and ``ratio_to_hand_tuned``
are the median over rounds of the ratio between two runs of the same round
(the drift between rounds cancels out of each pair), ``ratio_iqr_to_*`` the
quartiles of those ratios; ``rps`` and ``p99_ms`` are medians over the rounds.
``cpu_us_per_request`` is HAProxy's own CPU time (user + system of master and
workers, from /proc/PID/stat) per request served, ``cpu_ratio_to_*`` its
paired ratio (below 1: cheaper per request). ``ours_again``'s ratios show the
resolution: a difference inside them is not a difference this run can see.

The reload measurement (``--no-reload-memory`` skips it): each rendering of a
TERMINATED_HTTPS LB on a modelled amphora, 10,000 full handshakes to fill
the session cache, then a reload, sampling the summed RSS and PSS of every
HAProxy process until the old worker is gone; ``peak`` is the highest sum.

``--haproxy-root ROOT`` runs the amphora's HAProxy from a debootstrapped
Debian root (the image tests cache trixie's and sid's under
``~/.cache/amphora-image/roots``) with that root's loader and libraries:
the same comparison on HAProxy 3.0 or 3.2, where the HTTP/2 case runs.
``--seconds`` sets each load run's length (default 1: more, shorter pairs
beat fewer, longer ones on a machine whose speed drifts).

``--variants`` measures single changes to our config against the unchanged
one (interleaved, same medians), for the tuning notes in docs/haproxy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amphora_contract import agent_config
from bench.common import emit, log, process_tree, pss_kib, rss_kib
from bench.fabric_setup import Bench, plugged_amphora
from controller_stub.client import AgentError
from controller_stub.compute import nsutil
from controller_stub.pki import CertificateAuthority
from haproxy_templates import RenderOptions, Target, capabilities, render

ROOT = Path(__file__).resolve().parents[1]
OCTAVIA_PYTHON = ROOT / ".venv-octavia" / "bin" / "python"
HAND_TUNED = Path(__file__).with_name("hand_tuned.cfg")
CASES = ("http_keep_alive", "http_new_connection", "tls13_keep_alive", "tls_full_handshake",
         "tls_resumption", "http2")
SECONDS = 1
CONNECTIONS = 32
S_TIME_PROCESSES = 4
LOG_PORT = 5514
# The modelled amphora: memory as a freshly booted VM reports it in /1.0/details.
AMPHORA_MEMORY_KB = 4 * 1024 * 1024
RELOAD_SESSIONS = 10_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# per listener: Octavia's unlimited default (50,000 each) needs more open files
# than this machine's amphorae get; the same explicit limit goes to all three
CONNECTION_LIMIT = 3500
# Octavia's request log format (its templates' default, one project and LB)
OCTAVIA_LOG_FORMAT = (r"bench-project\ lb\ %f\ %ci\ %cp\ %t\ %{+Q}r\ %ST\ %B\ %U\ "
                      r"%[ssl_c_verify]\ %{+Q}[ssl_c_s_dn]\ %b\ %s\ %Tt\ %tsc")


def modelled_details(details: dict[str, Any], memory_kb: int, cpu_count: int,
                     tuned: bool) -> dict[str, Any]:
    """The amphora's /1.0/details with the modelled vCPUs and memory (this
    machine's own memory would size Octavia's TLS cache at gigabytes)."""
    return {**details, "cpu_count": cpu_count,
            "active_tuned_profiles": "amphora" if tuned else "",
            "memory": {"total": memory_kb, "free": memory_kb * 85 // 100,
                       "buffers": memory_kb // 100, "cached": memory_kb * 5 // 100,
                       "swap_used": 0, "shared": 0, "slab": 0, "committed_as": 0}}


# ------------------------------------------------------------------ load tools

def _in(namespace: str, cpus: str | None, argv: list[str]) -> list[str]:
    pin = ["taskset", "-c", cpus] if cpus else []
    return ["ip", "netns", "exec", namespace, *pin, *argv]


def wrk(namespace: str, cpus: str | None, url: str, *, close: bool = False) -> dict[str, Any]:
    argv = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", url]
    if close:
        argv[-1:-1] = ["-H", "Connection: close"]
    out = subprocess.run(_in(namespace, cpus, argv), capture_output=True, text=True,
                         check=True, timeout=60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = (sum(int(x) for x in errors.groups()) if errors else 0) + (
        int(non2xx.group(1)) if non2xx else 0)
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale, "errors": failed,
            "requests": requests}


def s_time_new(namespace: str, cpus: str | None, address: str) -> dict[str, Any]:
    """Full handshakes/s: ``openssl s_time -new`` (a fresh session per connection)."""
    argv = ["openssl", "s_time", "-connect", address, "-new", "-time", str(SECONDS),
            "-www", "/"]
    start = time.monotonic()
    procs = [subprocess.Popen(_in(namespace, cpus, argv), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for _ in range(S_TIME_PROCESSES)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    elapsed = time.monotonic() - start
    total, errors = 0, 0
    for out in outs:
        match = re.search(r"(\d+) connections in [\d.]+ real seconds", out)
        if match is None:
            errors += 1
            continue
        total += int(match.group(1))
        errors += out.count("ERROR")
    return {"rps": total / elapsed, "p99_ms": None, "errors": errors, "requests": total}


def h2load(namespace: str, cpus: str | None, url: str, workdir: Path) -> dict[str, Any]:
    logfile = workdir / "h2load.log"
    argv = ["h2load", "-t2", f"-c{CONNECTIONS}", "-m10", f"-D{SECONDS}", "--log-file",
            str(logfile), url]
    out = subprocess.run(_in(namespace, cpus, argv), capture_output=True, text=True,
                         check=True, timeout=60).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    assert counts is not None, out
    status = re.search(r"status codes: (\d+) 2xx", out)
    assert status is not None and "h2" in out, out  # ALPN chose HTTP/2
    latencies = sorted(int(line.split()[2]) for line in logfile.read_text().splitlines()
                       if line.strip())
    p99_us = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    done, *failed = (int(x) for x in counts.groups())
    return {"rps": rps, "p99_ms": p99_us / 1000, "errors": sum(failed), "requests": done}


def show_info(sock: Path) -> dict[str, str]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(str(sock))
        conn.sendall(b"show info\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return dict(line.split(": ", 1) for line in data.decode().splitlines() if ": " in line)


class HandshakeSampler:
    """Samples HAProxy's TLS rates mid-run: what share of handshakes were full."""

    def __init__(self, sock: Path) -> None:
        self.sock = sock
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._stop.wait(1.0)
        while not self._stop.is_set():
            info = show_info(self.sock)
            self.samples.append((int(info["SslFrontendKeyRate"]), int(info["SslRate"])))
            self._stop.wait(0.5)

    def __enter__(self) -> HandshakeSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def full_pct(self) -> float | None:
        keys, conns = sum(k for k, _ in self.samples), sum(c for _, c in self.samples)
        return round(100 * keys / conns, 1) if conns else None


# ------------------------------------------------------------------- the setup

@dataclass(frozen=True)
class Slot:
    """One load balancer on the amphora. Every config under test gets its own,
    on its own two ports, and all of them run at once: the benchmark switches
    configs by switching ports, within seconds and without a restart."""

    name: str
    index: int
    lb_id: str
    http_listener: str
    tls_listener: str
    stats_socket: Path

    @property
    def http_port(self) -> int:
        return 80 + 1000 * self.index

    @property
    def tls_port(self) -> int:
        return 443 + 1000 * self.index


class Lab:
    """The amphora, its load balancers, the member, the log sink and the configs."""

    def __init__(self, bench: Bench, workdir: Path, memory_kb: int) -> None:
        self.bench = bench
        self.workdir = workdir
        self.memory_kb = memory_kb
        conf = agent_config.load(bench.amphora.config_file)
        self.base_path, self.cert_dir = conf.base_path, conf.base_cert_dir
        self.vip = str(bench.vip.ipv4)
        self.member_ip = str(bench.members[0].ipv4)
        self.details = bench.client.details()
        self.info = bench.client.info()
        self.log_target = f"127.0.0.1:{LOG_PORT}"
        self.ca = CertificateAuthority.create("bench CA")
        self.pems: dict[str, bytes] = {}
        self.slots: dict[str, Slot] = {}
        self.running: set[str] = set()
        self.openssl_version = "3.0.0"  # Target's default: this host's major.minor

    def use_root_openssl(self, root: Path) -> None:
        """With ``--haproxy-root``, render for the root's OpenSSL (the agent
        reports the HAProxy it runs, but no OpenSSL version)."""
        self.openssl_version = subprocess.run(
            ["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f=${Version}", "openssl"],
            capture_output=True, text=True, check=True).stdout.strip().split("-")[0]

    def issue_certificates(self, key_kind: str) -> None:
        """The LB's certificate, and an ECDSA P-256 one for the side-by-side variant."""
        self.pems = {"lb.pem": self.ca.issue_server(self.vip, key_kind=key_kind).pem,
                     "lb-ecdsa.pem": self.ca.issue_server(self.vip, key_kind="ec").pem}

    def slot(self, name: str) -> Slot:
        """The load balancer ``name`` runs as, created (certificates uploaded) on first use."""
        if name not in self.slots:
            lb_id = str(uuid.uuid4())
            slot = Slot(name, len(self.slots), lb_id, str(uuid.uuid4()), str(uuid.uuid4()),
                        Path(self.base_path) / f"{lb_id}.sock")
            client = self.bench.client
            for pem_name, pem in self.pems.items():
                client.upload_cert(lb_id, pem_name, pem)
            # the same certificate as Octavia's driver uploads it: a crt-list
            # named after the listener
            crt_list = f"{self.cert_dir}/{lb_id}/lb.pem\n".encode()
            client.upload_cert(lb_id, f"{slot.tls_listener}.pem", crt_list)
            self.slots[name] = slot
        return self.slots[name]

    def document(self, slot: Slot) -> dict[str, Any]:
        pools = [str(uuid.uuid5(uuid.NAMESPACE_OID, f"{slot.lb_id}/{n}")) for n in (1, 2)]
        member = {"address": self.member_ip, "protocol_port": 8080}
        return {
            "id": slot.lb_id, "vip_address": self.vip, "topology": "SINGLE",
            "amphorae": [{"id": self.bench.amphora.id, "role": "STANDALONE"}],
            "listeners": [
                {"id": slot.http_listener, "protocol": "HTTP", "protocol_port": slot.http_port,
                 "default_pool_id": pools[0], "connection_limit": CONNECTION_LIMIT},
                {"id": slot.tls_listener, "protocol": "TERMINATED_HTTPS",
                 "protocol_port": slot.tls_port, "default_pool_id": pools[1],
                 "default_tls_container_ref": "lb.pem", "connection_limit": CONNECTION_LIMIT}],
            "pools": [{"id": pool, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                       "members": [{"id": str(uuid.uuid5(uuid.NAMESPACE_OID, pool)), **member}]}
                      for pool in pools],
        }

    def ours(self, nbthread: int, slot: Slot, **options: Any) -> str:
        # 1 thread: a 2-vCPU amphora leaving CPU 0 to the system; 2: both vCPUs
        target = Target(haproxy_version=self.info["haproxy_version"], cpu_count=2,
                        openssl_version=self.openssl_version,
                        reserve_cpu0=nbthread == 1, memory_kb=self.memory_kb,
                        fd_limit=self.details["open_file_limit"]["hard"])
        return render(self.document(slot), amphora_id=self.bench.amphora.id, target=target,
                      options=RenderOptions(base_path=self.base_path, cert_dir=self.cert_dir,
                                            log_target=self.log_target, **options))

    def octavia(self, nbthread: int, slot: Slot) -> str:
        args = {"lb": self.document(slot), "amphora_id": self.bench.amphora.id,
                "base_path": self.base_path, "cert_dir": self.cert_dir,
                "log_target": self.log_target,
                "haproxy_version": ".".join(self.info["haproxy_version"].split(".")[:3]),
                "amp_details": modelled_details(self.details, self.memory_kb, 2,
                                                tuned=nbthread == 1)}
        return subprocess.run([str(OCTAVIA_PYTHON), str(ROOT / "bench" / "octavia_render.py"),
                               json.dumps(args)], capture_output=True, text=True, check=True,
                              timeout=120).stdout

    def hand_tuned(self, nbthread: int, slot: Slot) -> str:
        return string.Template(HAND_TUNED.read_text()).substitute(
            log_target=self.log_target, stats_socket=slot.stats_socket, nbthread=nbthread,
            cpus="1" if nbthread == 1 else "0-1", vip=self.vip, http_port=slot.http_port,
            tls_port=slot.tls_port, cert=f"{self.cert_dir}/{slot.lb_id}/lb.pem",
            member=f"{self.member_ip}:8080")

    def install(self, slot: Slot, config: str) -> None:
        """Install ``config`` as ``slot``'s and start it cold (stopped first if running)."""
        client = self.bench.client
        if slot.name in self.running:
            client.lb_action(slot.lb_id, "stop")
        client.upload_haproxy(self.bench.amphora.id, slot.lb_id, config)
        client.lb_action(slot.lb_id, "start")
        self.running.add(slot.name)

    def stop_all(self) -> None:
        for name in sorted(self.running):
            self.bench.client.lb_action(self.slots[name].lb_id, "stop")
        self.running.clear()

    def master_pid(self, slot: Slot) -> int:
        return int((Path(self.base_path) / slot.lb_id / "haproxy.pid").read_text().split()[0])


def haproxy_from_root(root: Path, workdir: Path) -> str:
    """An executable that runs ``root``'s HAProxy with ``root``'s loader and libraries.

    A newer Debian's HAProxy needs a newer glibc than this host's, so the
    root's own ``ld-linux`` starts it; ``--argv0`` keeps the name it was
    called by, so a master re-executing itself on reload comes back here.
    """
    loader, binary = root / "lib64/ld-linux-x86-64.so.2", root / "usr/sbin/haproxy"
    for path in (loader, binary):
        if not path.is_file():
            raise SystemExit(f"--haproxy-root: {path} is missing")
    libs = f"{root}/usr/lib/x86_64-linux-gnu:{root}/lib/x86_64-linux-gnu"
    wrapper = workdir / "haproxy"
    wrapper.write_text("#!/bin/sh\n" + " ".join((
        "exec", shlex.quote(str(loader)), "--library-path", shlex.quote(libs),
        "--argv0", '"$0"', shlex.quote(str(binary)), '"$@"')) + "\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def start_static_member(bench: Bench, pem: Path) -> Path:
    """A HAProxy in the member namespace answering 200 on :8080 (pinned to CPU 0)."""
    member = bench.members[0]
    workdir = bench.fabric.workdir / "static-member"
    workdir.mkdir(exist_ok=True)
    cfg = workdir / "member.cfg"
    cfg.write_text(
        "global\n  maxconn 4000\n  nbthread 1\n"
        "defaults\n  mode http\n  timeout client 30s\n  timeout server 30s\n"
        "  timeout connect 5s\n"
        f"frontend plain\n  bind {member.ipv4}:8080\n"
        f"  bind {member.ipv4}:8443 ssl crt {pem} ssl-min-ver TLSv1.3\n"
        "  http-request return status 200 content-type text/plain string ok\n")
    pid = workdir / "member.pid"
    subprocess.run(_in(member.namespace, "0", ["haproxy", "-D", "-f", str(cfg), "-p", str(pid)]),
                   check=True, capture_output=True)
    return pid


def start_log_sink(namespace: str) -> subprocess.Popen[bytes]:
    """A UDP syslog sink in the amphora's namespace that reads and drops."""
    code = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)\n"
            f"s.bind(('127.0.0.1', {LOG_PORT}))\nb = bytearray(65536)\n"
            "while True:\n    s.recv_into(b)\n")
    return subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-c", code])


# ----------------------------------------------------------------- the cases

def cpu_seconds(master: int) -> float:
    """User + system CPU of the master and its workers so far."""
    ticks = 0
    for pid in process_tree(master):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def run_case(lab: Lab, slot: Slot, case: str, nbthread: int) -> dict[str, Any]:
    """One load run, with HAProxy's own CPU per request: on a shared machine
    that varies far less than requests/s does."""
    master = lab.master_pid(slot)
    before = cpu_seconds(master)
    result = _load(lab, slot, case, nbthread)
    used = cpu_seconds(master) - before
    requests = result.pop("requests")
    return {**result, "cpu_us_per_request": 1e6 * used / requests if requests else None}


def _load(lab: Lab, slot: Slot, case: str, nbthread: int) -> dict[str, Any]:
    user = lab.bench.user.namespace
    cpus = "0" if nbthread == 1 else None
    http, https = f"http://{lab.vip}:{slot.http_port}/", f"https://{lab.vip}:{slot.tls_port}/"
    if case == "http_keep_alive":
        return wrk(user, cpus, http)
    if case == "http_new_connection":
        return wrk(user, cpus, http, close=True)
    if case == "tls13_keep_alive":
        return wrk(user, cpus, https)
    if case == "http2":
        return h2load(user, cpus, https, lab.workdir)
    with HandshakeSampler(slot.stats_socket) as sampler:
        if case == "tls_full_handshake":
            result = s_time_new(user, cpus, f"{lab.vip}:{slot.tls_port}")
        else:
            result = wrk(user, cpus, https, close=True)
    return {**result, "full_handshake_pct": sampler.full_pct}


def median_of(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rps": round(statistics.median(s["rps"] for s in samples), 1),
        "p99_ms": (round(statistics.median(s["p99_ms"] for s in samples), 3)
                   if samples[0]["p99_ms"] is not None else None),
        "errors": sum(s["errors"] for s in samples),
        "cpu_us_per_request": round(statistics.median(
            s["cpu_us_per_request"] for s in samples if s["cpu_us_per_request"] is not None), 1),
    }
    if "full_handshake_pct" in samples[0]:
        pcts = [s["full_handshake_pct"] for s in samples if s["full_handshake_pct"] is not None]
        out["full_handshake_pct"] = round(statistics.median(pcts), 1) if pcts else None
    return out


def paired_ratios(mine: list[dict[str, Any]], base: list[dict[str, Any]],
                  label: str) -> dict[str, Any]:
    """Ratios to ``base`` taken run by run (the two ran seconds apart in the
    same round), then the median: the machine's drift between rounds, far
    larger than the differences measured, cancels out of each pair."""
    rps = [m["rps"] / b["rps"] for m, b in zip(mine, base, strict=True)]
    cpu = [m["cpu_us_per_request"] / b["cpu_us_per_request"]
           for m, b in zip(mine, base, strict=True)
           if m["cpu_us_per_request"] and b["cpu_us_per_request"]]
    quartiles = statistics.quantiles(rps, n=4) if len(rps) > 1 else rps * 3
    out: dict[str, Any] = {f"ratio_to_{label}": round(statistics.median(rps), 3),
                           f"ratio_iqr_to_{label}": [round(quartiles[0], 3),
                                                     round(quartiles[2], 3)]}
    if cpu:
        out[f"cpu_ratio_to_{label}"] = round(statistics.median(cpu), 3)
    return out


def compare(lab: Lab, rounds: int, builders: dict[str, Callable[[int, Slot], str]],
            cases: tuple[str, ...], bench_name: str, baselines: tuple[str, ...],
            threads: tuple[int, ...] = (1, 2)) -> None:
    """Run every config side by side, case by case, in rounds; emit medians
    with paired ratios to ``baselines``."""
    for nbthread in threads:
        for name, build in builders.items():
            slot = lab.slot(name)
            lab.install(slot, build(nbthread, slot))
        samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
        names = list(builders)
        for round_no in range(rounds):
            log(f"{bench_name}: nbthread {nbthread} round {round_no + 1}/{rounds}")
            for case_no, case in enumerate(cases):
                # each config takes each place in turn: whatever the machine
                # does at a given moment falls on all of them alike
                shift = (round_no + case_no) % len(names)
                for name in names[shift:] + names[:shift]:
                    samples.setdefault((name, case), []).append(
                        run_case(lab, lab.slots[name], case, nbthread))
        for case in cases:
            for name in names:
                ratios: dict[str, Any] = {}
                for base in baselines:
                    if base in builders:
                        ratios.update(paired_ratios(samples[(name, case)],
                                                    samples[(base, case)], base))
                emit(bench_name, config=name, case=case, nbthread=nbthread, rounds=rounds,
                     **median_of(samples[(name, case)]), **ratios)


# ------------------------------------------------------------ reload memory

def haproxy_memory_kib(master: int) -> tuple[int, int, int]:
    """(RSS sum, PSS sum, process count) of the master and all its workers."""
    pids = process_tree(master)
    rss, pss = 0, 0
    for pid in pids:
        try:
            rss, pss = rss + rss_kib(pid), pss + pss_kib(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return rss, pss, len(pids)


def _reload(lab: Lab, slot: Slot, outcome: dict[str, str]) -> None:
    try:
        lab.bench.client.lb_action(slot.lb_id, "reload")
        outcome["reload"] = "ok"
    except AgentError as exc:  # recorded: part of what is measured
        outcome["reload"] = str(exc).splitlines()[-1][:200]


def reload_memory(lab: Lab, builders: dict[str, Callable[[int, Slot], str]]) -> None:
    """Reload of the TERMINATED_HTTPS LB holding RELOAD_SESSIONS cached sessions,
    one config at a time (nothing else runs)."""
    user = lab.bench.user.namespace
    lab.stop_all()
    for name, build in builders.items():
        slot = lab.slot(name)
        address = f"{lab.vip}:{slot.tls_port}"
        config = build(2, slot)
        lab.install(slot, config)
        master = lab.master_pid(slot)
        before_fill = haproxy_memory_kib(master)
        done = 0
        while done < RELOAD_SESSIONS:  # full handshakes, each one a new cache entry
            done += s_time_new(user, None, address)["requests"]
        filled = haproxy_memory_kib(master)
        old_workers = set(process_tree(master)) - {master}
        peak_rss, peak_pss = filled[0], filled[1]
        # an established connection keeps the old worker alive through the
        # reload, so both generations are measured side by side
        holder = subprocess.Popen(_in(user, None, ["openssl", "s_client", "-connect",
                                                   address]),
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while int(show_info(slot.stats_socket)["CurrSslConns"]) < 1:
            assert time.monotonic() < deadline, "the holding connection never came up"
        outcome: dict[str, str] = {}
        reloader = threading.Thread(target=_reload, args=(lab, slot, outcome))
        reloader.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rss, pss, _ = haproxy_memory_kib(master)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            if not reloader.is_alive():
                if holder.poll() is None:
                    holder.stdin.close()  # type: ignore[union-attr]  # let the old worker go
                    holder.wait(10)
                elif not old_workers & set(process_tree(master)):
                    break
        holder.kill()
        holder.wait()
        reloader.join(30)
        lab.stop_all()
        cachesize = re.search(r"tune\.ssl\.cachesize (\d+)", config)
        emit("dataplane_reload_memory", config=name, sessions=RELOAD_SESSIONS,
             amphora_memory_kib=lab.memory_kb,
             tune_ssl_cachesize=int(cachesize.group(1)) if cachesize else "default (20000)",
             started_rss_kib=before_fill[0], filled_rss_kib=filled[0],
             filled_pss_kib=filled[1], peak_rss_kib=peak_rss, peak_pss_kib=peak_pss,
             reload=outcome.get("reload", "no answer in 30 s"))


# ------------------------------------------------------------------- main

def variants(lab: Lab) -> dict[str, Callable[[int, Slot], str]]:
    """Single changes to our config, each measured against it unchanged."""
    def edit(old: str, new: str) -> Callable[[int, Slot], str]:
        def config(n: int, slot: Slot) -> str:
            text = lab.ours(n, slot)
            if old not in text:  # a variant that silently equals ours measures nothing
                raise SystemExit(f"variant edit: {old.strip()!r} is not in our config")
            return text.replace(old, new)
        return config

    def drop(pattern: str) -> Callable[[int, Slot], str]:
        def config(n: int, slot: Slot) -> str:
            text, count = re.subn(pattern, "", lab.ours(n, slot))
            if not count:
                raise SystemExit(f"variant drop: {pattern!r} matches nothing in our config")
            return text
        return config

    return {
        "ours": lab.ours,
        # the same config twice: the spread of its ratio is the run's resolution
        "ours_again": lab.ours,
        "small_session_cache": lambda n, slot: re.sub(r"tune\.ssl\.cachesize \d+",
                                                "tune.ssl.cachesize 20000", lab.ours(n, slot)),
        "curves_x25519_p256": edit("    tune.ssl.default-dh-param 2048\n",
                                   "    tune.ssl.default-dh-param 2048\n"
                                   "    ssl-default-bind-curves X25519:P-256\n"),
        "no_user_group": drop(r'    (user|group) "[^"]+"\n'),
        "no_ssl_max_ver": drop(r" ssl-max-ver TLSv1\.3"),
        "no_server_state": drop(r"    (server-state-file|load-server-state-from-file) .*\n"),
        "no_notice_log": drop(r'    log "[^"]+" "local1" notice\n'),
        "no_dh_param": drop(r"    tune\.ssl\.default-dh-param .*\n"),
        "bind_tls_from_globals": drop(r' ciphers "[^"]+" ciphersuites "[^"]+" '
                                      r'ssl-min-ver TLSv1\.2 ssl-max-ver TLSv1\.3'),
        "global_trimmed": drop(r'    (user|group|stats timeout|server-state-file|hard-stop-after'
                               r'|tune\.ssl\.default-dh-param|ssl-default-server-\w+'
                               r'|load-server-state-from-file) .*\n'),
        "no_h2_glitches_threshold": drop(r"    tune\.h2\.(fe|be)\.glitches-threshold .*\n"),
        "h2_alpn_only": edit(' alpn "h2,http/1.1,http/1.0"', ' alpn "h2,http/1.1"'),
        "no_request_log": edit("    option httplog\n", "    option dontlog-normal\n"),
        "connection_logging_off": lambda n, slot: lab.ours(n, slot, connection_logging=False),
        "http_reuse_aggressive": edit("    http-reuse always\n", "    http-reuse aggressive\n"),
        "http_reuse_safe": edit("    http-reuse always\n", "    http-reuse safe\n"),
        "no_idle_close_on_response": edit("    option idle-close-on-response\n", ""),
        "fewer_timeouts": lambda n, slot: re.sub(
            r"    timeout (http-request|queue|tunnel|client-fin|server-fin) .*\n", "",
            lab.ours(n, slot)),
        # Octavia's request log line instead of HAProxy's httplog format
        "log_format_octavia": edit("    option httplog\n", "    log-format " + OCTAVIA_LOG_FORMAT
                                   + "\n"),
        "splice_request_response": edit(
            "    load-server-state-from-file global\n",
            "    load-server-state-from-file global\n    option splice-request\n"
            "    option splice-response\n"),
        "no_http_timeouts": drop(r"    timeout http-(request|keep-alive) .*\n"),
        "splice_auto": edit("    load-server-state-from-file global\n",
                            "    load-server-state-from-file global\n    option splice-auto\n"),
        "bufsize_32k": edit("    tune.ssl.default-dh-param 2048\n",
                            "    tune.ssl.default-dh-param 2048\n    tune.bufsize 32768\n"),
        "ecdsa_certificate": edit('/lb.pem"', '/lb-ecdsa.pem"'),
        "no_cpu_map": lambda n, slot: re.sub(r"    cpu-map .*\n", "", lab.ours(n, slot)),
        "no_tls_tickets": edit(" alpn \"h2,http/1.1,http/1.0\"",
                               " alpn \"h2,http/1.1,http/1.0\" no-tls-tickets"),
    }


def main() -> int:
    global SECONDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--memory-kb", type=int, default=AMPHORA_MEMORY_KB,
                        help="the modelled amphora's RAM")
    parser.add_argument("--no-reload-memory", action="store_true",
                        help="skip the memory measurement during a reload")
    parser.add_argument("--variants", action="store_true",
                        help="measure single changes to our config instead")
    parser.add_argument("--no-control", action="store_true",
                        help="skip the second copy of our config (the run's own resolution)")
    parser.add_argument("--ecdsa", action="store_true",
                        help="the LB's certificate is ECDSA P-256 instead of RSA 2048")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--only", default="", help="with --variants: these variants and ours")
    parser.add_argument("--threads", default="1,2", help="HAProxy thread counts to run")
    parser.add_argument("--haproxy-root", type=Path, default=None,
                        help="a Debian root (debootstrap) whose HAProxy the amphora runs, "
                             "through that root's own loader and libraries, e.g. trixie's 3.0")
    parser.add_argument("--seconds", type=int, default=SECONDS,
                        help="length of each load run (longer: steadier medians)")
    args = parser.parse_args()
    SECONDS = args.seconds
    cases = tuple(c for c in args.cases.split(",") if c)
    threads = tuple(int(n) for n in args.threads.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="dataplane-"))
    haproxy_cmd = haproxy_from_root(args.haproxy_root, workdir) if args.haproxy_root else None
    with plugged_amphora(members=1, haproxy_cmd=haproxy_cmd) as bench:
        pem = bench.fabric.workdir / "member-tls.pem"
        lab = Lab(bench, workdir, args.memory_kb)
        if args.haproxy_root:
            lab.use_root_openssl(args.haproxy_root)
        # HTTP/2 runs only where the image offers it (docs/rendering.md's table)
        versions = capabilities.Versions.of(
            ".".join(lab.info["haproxy_version"].split(".")[:3]).split("-")[0])
        no_h2 = capabilities.missing(versions, "http2_frontend")
        if "http2" in cases and no_h2:
            emit("dataplane", case="http2", skipped=no_h2)
            cases = tuple(c for c in cases if c != "http2")
        lab.ca.issue_server(str(bench.members[0].ipv4)).write(pem)
        member_pid = start_static_member(bench, pem)
        sink = start_log_sink(bench.amphora.haproxy_namespace)
        user = bench.user.namespace
        # tens of thousands of short connections per run: let the client
        # namespace reuse TIME_WAIT ports, or later runs measure port scarcity
        nsutil.sysctl(user, "net.ipv4.tcp_tw_reuse", "1")
        nsutil.sysctl(user, "net.ipv4.ip_local_port_range", "1024 65535")
        try:
            lab.issue_certificates("ec" if args.ecdsa else "rsa")
            builders = {"ours": lab.ours, "octavia": lab.octavia, "hand_tuned": lab.hand_tuned}
            if not args.no_control:
                builders["ours_again"] = lab.ours
            if not cases:
                pass
            elif args.variants:
                chosen = {name: build for name, build in variants(lab).items()
                          if not args.only or name == "ours" or name in args.only.split(",")}
                compare(lab, args.rounds, chosen, cases, "dataplane_variant", ("ours",), threads)
            else:
                # ours_again ÷ ours: the resolution, printed beside the results
                compare(lab, args.rounds, builders, cases, "dataplane",
                        ("octavia", "hand_tuned", "ours"), threads)
            if not args.no_reload_memory and not args.variants:
                reload_memory(lab, {"ours": lab.ours, "octavia": lab.octavia})
            lab.stop_all()
            for slot in lab.slots.values():
                bench.client.delete_listener(slot.lb_id)
        finally:
            sink.kill()
            sink.wait()
            shutil.rmtree(workdir, ignore_errors=True)
            subprocess.run(["kill", member_pid.read_text().strip()], check=False)
    log("dataplane bench done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
