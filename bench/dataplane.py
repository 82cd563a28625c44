"""Requests/s and p99 through an amphora on the local fabric.

wrk runs in a client namespace against the VIP: HTTP keep-alive, HTTP with a
new connection per request, and TLS 1.3 (terminated on the amphora), with
HAProxy at nbthread 1 and 2. The member is a static HAProxy responder, so the
member is never the bottleneck. Baseline, same run: the same traffic straight
to the member (plain and TLS), and ``ratio`` = through-amphora / direct.
Everything shares this machine's 2 cores, so ratios matter, not absolutes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, log
from bench.fabric_setup import Bench, plugged_amphora
from controller_stub.compute import nsutil
from controller_stub.octavia_style import OctaviaStyleConfig
from controller_stub.pki import CertificateAuthority

DURATION = "5s"
CONNECTIONS = 32


def wrk(namespace: str, url: str, *, close: bool = False) -> dict[str, float]:
    argv = ["ip", "netns", "exec", namespace, "wrk", "-t2", f"-c{CONNECTIONS}",
            f"-d{DURATION}", "--latency", url]
    if close:
        argv[-1:-1] = ["-H", "Connection: close"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = (sum(int(x) for x in errors.groups()) if errors else 0) + (
        int(non2xx.group(1)) if non2xx else 0)
    return {"rps": round(rps, 1), "p99_ms": round(float(p99.group(1)) * scale, 3),
            "errors": failed}


def start_static_member(bench: Bench, pem: Path) -> tuple[str, Path]:
    """A HAProxy in the member namespace answering 200 on :80 and TLS :443."""
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
    subprocess.run(["ip", "netns", "exec", member.namespace, "haproxy", "-D", "-f", str(cfg),
                    "-p", str(pid)], check=True, capture_output=True)
    return str(member.ipv4), pid


def lb_config(bench: Bench, lb_id: str, member_ip: str, nbthread: int, pem_dir: Path) -> str:
    listener, tls_listener, pool = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    base = OctaviaStyleConfig(
        amphora_id=bench.amphora.id, lb_id=lb_id, listener_id=listener, pool_id=pool,
        base_path=str(bench.base_path), bind=f"{bench.vip.ipv4}:80",
        members=[(str(uuid.uuid4()), f"{member_ip}:8080")],
        extra_global=[f"nbthread {nbthread}", "maxconn 4000"],
        extra_frontend=["option idle-close-on-response"]).render()
    base = base.replace("    maxconn 1000\n", "", 1)  # the global one; nbthread sets scale
    return base + (
        f"\nfrontend {tls_listener}\n    bind {bench.vip.ipv4}:443 ssl crt {pem_dir}/lb.pem "
        "ssl-min-ver TLSv1.3\n    mode http\n"
        f"    default_backend {pool}:{listener}\n")


def main() -> int:
    with plugged_amphora(members=1) as bench:
        ca = CertificateAuthority.create("bench CA")
        pem = bench.fabric.workdir / "member-tls.pem"
        ca.issue_server(str(bench.members[0].ipv4)).write(pem)
        member_ip, member_pid = start_static_member(bench, pem)
        user = bench.user.namespace
        # tens of thousands of short connections per run: let the client
        # namespace reuse TIME_WAIT ports, or later runs measure port scarcity
        nsutil.sysctl(user, "net.ipv4.tcp_tw_reuse", "1")
        nsutil.sysctl(user, "net.ipv4.ip_local_port_range", "1024 65535")
        try:
            direct = {
                "http_keep_alive": wrk(user, f"http://{member_ip}:8080/"),
                "http_new_connection": wrk(user, f"http://{member_ip}:8080/", close=True),
                "tls13_keep_alive": wrk(user, f"https://{member_ip}:8443/"),
            }
            for mode, result in direct.items():
                emit("dataplane_direct_to_member_baseline", mode=mode, **result)
            lb_id = str(uuid.uuid4())
            client = bench.client
            client.upload_cert(lb_id, "lb.pem", ca.issue_server(str(bench.vip.ipv4)).pem)
            cert_dir = Path(bench.base_path) / "certs" / lb_id
            vip = str(bench.vip.ipv4)
            for nbthread in (1, 2):
                client.upload_haproxy(bench.amphora.id, lb_id,
                                      lb_config(bench, lb_id, member_ip, nbthread, cert_dir))
                client.lb_action(lb_id, "reload")
                through = {
                    "http_keep_alive": wrk(user, f"http://{vip}/"),
                    "http_new_connection": wrk(user, f"http://{vip}/", close=True),
                    "tls13_keep_alive": wrk(user, f"https://{vip}/"),
                }
                for mode, result in through.items():
                    emit("dataplane_through_amphora", mode=mode, nbthread=nbthread, **result,
                         ratio_rps_to_direct=round(result["rps"] / direct[mode]["rps"], 2))
            client.delete_listener(lb_id)
        finally:
            subprocess.run(["kill", member_pid.read_text().strip()], check=False)
    log("dataplane bench done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
