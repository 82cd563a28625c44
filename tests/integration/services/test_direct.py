"""The direct service manager with real HAProxy in a real namespace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from amphora_agent.services import DirectServiceManager, ServiceSpec
from tests.support import namespaces


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"amp-svc-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "pids", name], capture_output=True, check=False)
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                          check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", name], check=False)


def _spec(tmp_path: Path, namespace: str) -> ServiceSpec:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        f"global\n  maxconn 100\n  stats socket {tmp_path}/stats.sock mode 600 level admin\n"
        "defaults\n  mode http\n  timeout client 5s\n  timeout server 5s\n"
        "  timeout connect 5s\n"
        "frontend f\n  bind 127.0.0.1:8080\n  http-request return status 200 "
        "content-type text/plain string ok\n")
    pid_file = str(tmp_path / "haproxy.pid")
    master = ("-S", f"{tmp_path}/master.sock,mode,600")
    return ServiceSpec(
        name="haproxy-test", description="test",
        foreground=("haproxy", "-Ws", "-f", str(cfg), "-p", pid_file, *master),
        daemon=("haproxy", "-W", "-D", "-f", str(cfg), "-p", pid_file, *master),
        pid_file=pid_file, namespace=namespace, reload_signal=signal.SIGUSR2,
        limit_nofile=4096)


def _ns_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def _workers(master_pid: int) -> set[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text()
    return {int(pid) for pid in children.split()}


def _wait_for(condition, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _takes_reloads(tmp_path: Path) -> bool:
    """HAProxy's master answers its CLI only from its event loop, after it has
    installed its SIGUSR2 handler; a reload signal sent earlier is lost."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as cli:
            cli.settimeout(2)
            cli.connect(f"{tmp_path}/master.sock")
            cli.sendall(b"show proc\n")
            cli.shutdown(socket.SHUT_WR)  # the master CLI answers once it sees our EOF
            reply = b"".join(iter(lambda: cli.recv(4096), b""))
    except OSError:
        return False
    return any(" worker " in line for line in reply.decode().splitlines())


def _serves(namespace: str) -> bool:
    try:
        return namespaces.http_get(namespace, "127.0.0.1", 8080, timeout=1) == (200, b"ok")
    except OSError:
        return False


def test_start_survives_a_new_manager_and_stops(tmp_path: Path, namespace: str) -> None:
    spec = _spec(tmp_path, namespace)
    manager = DirectServiceManager(str(tmp_path / "services"))
    manager.install(spec)
    assert not manager.is_running(spec.name)
    manager.start(spec)
    pid = manager.main_pid(spec.name)
    assert pid is not None
    assert _ns_of(pid) != _ns_of(os.getpid())  # runs inside the namespace
    soft_limit = Path(f"/proc/{pid}/limits").read_text()
    assert any(line.startswith("Max open files") and "4096" in line
               for line in soft_limit.splitlines())

    # an agent restart is a new manager over the same state directory
    again = DirectServiceManager(str(tmp_path / "services"))
    assert again.main_pid(spec.name) == pid
    again.start(spec)  # idempotent: still the same master
    assert again.main_pid(spec.name) == pid

    _wait_for(lambda: _takes_reloads(tmp_path), "the master to take reloads")
    workers = _workers(pid)
    assert workers, "the master has no worker"
    again.reload(spec)  # master-worker reload keeps the master, replaces the workers
    assert again.main_pid(spec.name) == pid
    _wait_for(lambda: (now := _workers(pid)) and not now & workers,
              "the reload to replace the workers")
    _wait_for(lambda: _serves(namespace), "the new worker to serve")

    again.stop(spec.name)
    assert not again.is_running(spec.name)
    # gone, or a zombie waiting for PID 1 to reap it
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    again.stop(spec.name)  # stopping a stopped service is fine
    again.uninstall(spec.name)
    assert not (tmp_path / "services" / f"{spec.name}.json").exists()


def test_reload_of_a_stopped_service_starts_it(tmp_path: Path, namespace: str) -> None:
    spec = _spec(tmp_path, namespace)
    manager = DirectServiceManager(str(tmp_path / "services"))
    manager.reload(spec)
    try:
        pid = manager.main_pid(spec.name)
        assert pid is not None and _ns_of(pid) != _ns_of(os.getpid())
        _wait_for(lambda: _serves(namespace), "HAProxy to serve in the namespace")
    finally:
        manager.uninstall(spec.name)


def test_failed_start_reports_the_daemon_output(tmp_path: Path, namespace: str) -> None:
    from amphora_agent.services import ServiceError

    spec = _spec(tmp_path, namespace)
    Path(spec.foreground[3]).write_text("global\n  bogus-keyword 1\n")
    manager = DirectServiceManager(str(tmp_path / "services"))
    with pytest.raises(ServiceError) as err:
        manager.start(spec)
    assert "bogus-keyword" in err.value.output
    assert not manager.is_running(spec.name)
