"""systemd readiness and watchdog, seen by a real datagram socket set as NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller_stub.local_agent import RunningAgent, short_tmpdir

WATCHDOG_USEC = 1_500_000  # probe every 0.5 s


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def _worker(master: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if (int(stat.rpartition(")")[2].split()[1]) == master
                    and b"heartbeat_service" not in cmdline):
                return int(entry.name)
    raise AssertionError("no worker")


def _receive(sock: socket.socket, wanted: bytes, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        message = sock.recv(4096)
        if message.startswith(wanted):
            return message


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    root = short_tmpdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(root / "notify"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(root / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    yield sock
    sock.close()
    (root / "notify").unlink()
    root.rmdir()


@pytest.fixture
def agent(notify_socket: socket.socket, make_agent) -> RunningAgent:
    return make_agent()


def test_ready_then_watchdog_only_while_the_worker_serves(
        agent: RunningAgent, notify_socket: socket.socket) -> None:
    master = agent.process.pid
    assert master is not None
    ready = _receive(notify_socket, b"READY=1")
    assert f"MAINPID={master}".encode() in ready.split(b"\n")
    for _ in range(3):  # generous deadlines: the host may be busy
        _receive(notify_socket, b"WATCHDOG=1", timeout=10)

    worker = _worker(master)
    os.kill(worker, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while _state(worker) != "T":
            assert time.monotonic() < deadline, "worker did not stop"
            time.sleep(0.01)
        _drain(notify_socket)  # sent before the stop
        notify_socket.settimeout(2 * WATCHDOG_USEC / 1e6)
        with pytest.raises(TimeoutError):
            notify_socket.recv(4096)
    finally:
        os.kill(worker, signal.SIGCONT)
    _receive(notify_socket, b"WATCHDOG=1", timeout=10)
    with agent.client() as client:
        assert client.info()["api_version"] == "1.0"
