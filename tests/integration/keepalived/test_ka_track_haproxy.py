"""Embedded mode: two amphorae share this host's process table. The rendered
``vrrp_track_process`` must follow this amphora's HAProxy only: killing the
other amphora's HAProxy (same LB id, other base_path, same binary) leaves the
VIP where it is; killing our own removes it at once (no polling interval)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amphora_contract.vrrp import haproxy_exec_link
from controller_stub.local_agent import free_port, short_tmpdir
from keepalived import HaproxyTrack, VrrpInstance, render
from tests.support import namespaces

LB = "11111111-2222-4333-8444-555555555555"
AMP = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
VIP = "192.0.2.100"
HAPROXY = "/usr/sbin/haproxy"


def wait_for(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def vip_present(ns: str) -> bool:
    out = subprocess.run(["ip", "-n", ns, "-o", "addr", "show", "dev", "eth1"],
                         capture_output=True, text=True, check=True).stdout
    return f" {VIP}/32 " in out


def start_haproxy(ns: str, base: Path) -> int:
    """HAProxy started the way the agent starts it: through the per-LB link."""
    cfg = base / LB / "haproxy.cfg"
    cfg.parent.mkdir(parents=True)
    link = Path(haproxy_exec_link(str(base), LB))
    link.symlink_to(HAPROXY)
    cfg.write_text("global\n    maxconn 100\ndefaults\n    mode tcp\n    timeout client 1s\n"
                   "    timeout server 1s\n    timeout connect 1s\nfrontend f\n"
                   f"    bind 127.0.0.1:{free_port()}\n")
    pid_file = base / LB / "haproxy.pid"
    subprocess.run(["ip", "netns", "exec", ns, str(link), "-W", "-D", "-f", str(cfg),
                    "-p", str(pid_file)], check=True, timeout=30)
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit())
    return int(pid_file.read_text().split()[0])


@pytest.fixture
def ns() -> Iterator[str]:
    with namespaces.namespace() as name:
        subprocess.run(["ip", "-n", name, "link", "add", "eth1", "type", "veth", "peer",
                        "name", "eth1p"], check=True)
        for dev in ("eth1", "eth1p"):
            subprocess.run(["ip", "-n", name, "link", "set", dev, "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "192.0.2.11/24", "dev", "eth1"],
                       check=True)
        yield name  # namespaces.destroy kills HAProxy and keepalived left in it


def test_only_this_amphoras_haproxy_is_tracked(ns: str) -> None:
    root = short_tmpdir()
    ours, theirs = root / "amp1", root / "amp2"
    our_pid = start_haproxy(ns, ours)
    their_pid = start_haproxy(ns, theirs)
    conf = root / "keepalived.conf"
    conf.write_text(render(VrrpInstance(
        lb_id=LB, amphora_id=AMP, role="MASTER", interface="eth1", virtual_router_id=9,
        unicast_src_ip="192.0.2.11", unicast_peers=("192.0.2.12",), vip=VIP,
        vip_network="192.0.2.0/24", track_haproxy=HaproxyTrack(lb_id=LB, base_path=str(ours)))))
    pids = [str(root / f"{n}.pid") for n in ("ka", "vrrp", "chk", "bfd")]
    keepalived = subprocess.Popen(
        # keepalived enters the namespace itself (-s): under `ip netns exec`
        # the kernel refuses its process-event socket (docs/keepalived.md).
        ["keepalived", "-s", ns, "-n", "-l", "-D", "-f", str(conf),
         "-p", pids[0], "-r", pids[1], "-c", pids[2], "-b", pids[3]],
        stdout=(root / "ka.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        # No peer answers: after the master-down interval this side takes the VIP.
        assert wait_for(lambda: vip_present(ns))
        os.kill(their_pid, signal.SIGKILL)
        # Ten advert intervals: a wrong match would have dropped the VIP by now.
        assert not wait_for(lambda: not vip_present(ns), timeout=1.0)
        killed = time.monotonic()
        os.kill(our_pid, signal.SIGKILL)
        assert wait_for(lambda: not vip_present(ns), timeout=5.0)
        # Event-driven, not polled: well under a second (reported, not asserted).
        print(f"VIP released {time.monotonic() - killed:.3f}s after HAProxy died")
    finally:
        keepalived.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            keepalived.wait(timeout=10)
        if keepalived.poll() is None:
            keepalived.kill()
            keepalived.wait()
        print((root / "ka.log").read_text())
        subprocess.run(["rm", "-rf", str(root)], check=False)
