"""The agent's processes: a single-threaded gunicorn master, its worker, and a
separate heartbeat process that survives worker restarts (docs/agent.md)."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amphora_contract import heartbeat
from controller_stub.local_agent import RunningAgent

HEARTBEAT_MODULE = b"amphora_agent.heartbeat_service"
KEY = "process-model-key"


def _children(pid: int) -> dict[int, bytes]:
    """{child pid: command line} of a live process, from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(entry.name)] = cmdline
    return out


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for its reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _roles(master: int) -> tuple[int | None, list[int]]:
    """(heartbeat pid, worker pids) among the master's children."""
    hb, workers = None, []
    for pid, cmdline in _children(master).items():
        if HEARTBEAT_MODULE in cmdline:
            hb = pid
        else:
            workers.append(pid)
    return hb, workers


def _next_heartbeat(sink: socket.socket) -> dict:
    data, _ = sink.recvfrom(65535)
    return heartbeat.unwrap(data, KEY)


@pytest.fixture
def sink() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


@pytest.fixture
def agent(make_agent, sink: socket.socket) -> RunningAgent:
    return make_agent(controllers=[f"127.0.0.1:{sink.getsockname()[1]}"],
                      heartbeat_interval=1, heartbeat_key=KEY)


def test_master_is_single_threaded_and_heartbeats_outlive_a_worker(
        agent: RunningAgent, sink: socket.socket) -> None:
    master = agent.process.pid
    assert master is not None
    hb, workers = _wait_for(lambda: (r := _roles(master))[0] and r[1] and r,
                            "a heartbeat process and a worker")
    assert len(workers) == 1
    assert _threads(master) == 1  # nothing a fork could copy a held lock from
    assert _threads(hb) == 1
    assert _next_heartbeat(sink)["id"] == agent.amphora_id

    os.kill(workers[0], signal.SIGKILL)
    new_workers = _wait_for(lambda: [w for w in _roles(master)[1] if w != workers[0]],
                            "a new worker")
    with agent.client() as client:
        assert client.info()["api_version"] == "1.0"
    assert _threads(master) == 1
    assert _roles(master)[0] == hb  # the same heartbeat process, not restarted
    before = _next_heartbeat(sink)["seq"]
    after = _next_heartbeat(sink)["seq"]
    assert after == before + 1  # one process, one counter, still counting
    assert new_workers and hb not in new_workers


def test_a_dead_heartbeat_process_is_restarted_and_stops_with_the_agent(
        agent: RunningAgent, sink: socket.socket) -> None:
    master = agent.process.pid
    assert master is not None
    hb = _wait_for(lambda: _roles(master)[0], "the heartbeat process")
    last = _next_heartbeat(sink)["seq"]
    os.kill(hb, signal.SIGKILL)
    replacement = _wait_for(lambda: (p := _roles(master)[0]) and p != hb and p,
                            "a restarted heartbeat process")
    # the restarted sender continues the persisted sequence (receivers of
    # version 4 reject a sequence number they have seen)
    _wait_for(lambda: _next_heartbeat(sink)["seq"] > last, "a heartbeat from the new process")
    assert _threads(master) == 1
    agent.process.stop()
    _wait_for(lambda: _gone(replacement), "the heartbeat process to exit with the agent")
