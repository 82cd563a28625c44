"""The direct service manager with real HAProxy in a real namespace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
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

    # HAProxy's master catches SIGUSR2 before it acts on it: a signal that
    # arrives before its event loop runs is queued and dropped, so only the
    # master CLI answering shows it takes reloads (the HAProxy manager reloads
    # over that CLI; this test exercises the generic signal path)
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


# A daemon that writes its pid file and then, before it installs its SIGHUP
# handler, waits on a FIFO the test holds: the window every daemon has, made
# as long as the test wants.
_LATE_HANDLER = """
import os, signal, sys
pid_file, gate, log, handle = sys.argv[1:5]
if os.fork():
    os._exit(0)
os.setsid()
with open(pid_file + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.rename(pid_file + ".tmp", pid_file)
with open(gate) as wait:
    wait.read()
open(log, "a").write("ready\\n")
if handle == "yes":
    signal.signal(signal.SIGHUP, lambda *_: open(log, "a").write("reloaded\\n"))
while True:
    signal.pause()
"""


def _late_handler_spec(tmp_path: Path, handle: bool) -> ServiceSpec:
    gate, pid_file, script = tmp_path / "gate", tmp_path / "daemon.pid", tmp_path / "daemon.py"
    os.mkfifo(gate)
    script.write_text(_LATE_HANDLER)  # a spec's arguments are single lines
    argv = (sys.executable, str(script), str(pid_file), str(gate),
            str(tmp_path / "daemon.log"), "yes" if handle else "no")
    return ServiceSpec(name="late-handler", description="test", foreground=argv, daemon=argv,
                       pid_file=str(pid_file))


def _open_gate(tmp_path: Path) -> None:
    """Let the daemon go on (once it is waiting at the gate)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            fd = os.open(tmp_path / "gate", os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:  # ENXIO: nobody reads yet (or the daemon is gone)
            assert time.monotonic() < deadline, "the daemon never reached its gate"
            time.sleep(0.01)
    os.write(fd, b"go")
    os.close(fd)


def test_start_returns_only_once_the_daemon_takes_its_reload_signal(tmp_path: Path) -> None:
    spec = _late_handler_spec(tmp_path, handle=True)
    manager = DirectServiceManager(str(tmp_path / "services"))
    outcome: list[BaseException | None] = []

    def start_and_reload() -> None:
        try:
            manager.start(spec)
            manager.reload(spec)  # right away, as a controller's next call may
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=start_and_reload)
    caller.start()
    try:
        _open_gate(tmp_path)
        caller.join(15)
        assert outcome == [None]
        log = tmp_path / "daemon.log"
        _wait_for(lambda: log.exists() and "reloaded" in log.read_text(), "the reload")
        assert log.read_text().splitlines() == ["ready", "reloaded"]
        assert manager.is_running(spec.name)  # a SIGHUP before the handler kills it
    finally:
        caller.join(15)
        manager.uninstall(spec.name)


def test_a_daemon_that_never_takes_its_reload_signal_is_reported_not_killed(
        tmp_path: Path) -> None:
    from amphora_agent.services import ServiceError

    spec = _late_handler_spec(tmp_path, handle=False)
    manager = DirectServiceManager(str(tmp_path / "services"), start_timeout=1.0)
    opener = threading.Thread(target=_open_gate, args=(tmp_path,))
    opener.start()
    try:
        with pytest.raises(ServiceError, match="does not handle its reload signal SIGHUP"):
            manager.start(spec)
        opener.join(10)
        pid = manager.main_pid(spec.name)
        assert pid is not None  # left running for the operator to see, not signalled
        with pytest.raises(ServiceError, match="does not handle its reload signal SIGHUP"):
            manager.reload(spec)
        assert manager.main_pid(spec.name) == pid
    finally:
        opener.join(10)
        manager.uninstall(spec.name)
