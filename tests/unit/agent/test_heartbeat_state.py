"""The heartbeat's counter state: deltas from seen and sent per worker, and the
persist-send-mark order that keeps a crashed sender from losing a heartbeat."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from amphora_agent.health import CounterState
from amphora_agent.heartbeat import HeartbeatSender
from amphora_contract import agent_config, heartbeat

L1, L2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def _c(bout: int, bin_: int = 0, stot: int = 0, ereq: int = 0) -> dict[str, int]:
    return {"bout": bout, "bin": bin_, "stot": stot, "ereq": ereq}


def test_deltas_sum_workers_and_survive_a_reload(tmp_path: Path) -> None:
    state = CounterState()
    state.observe(L1, 100, _c(10, stot=1))
    assert state.take_deltas({100}, [L1])[L1] == _c(10, stot=1)
    # reload: 100 is old and still counting, 200 is new
    state.observe(L1, 100, _c(15, stot=1))
    state.observe(L1, 200, _c(3, stot=2))
    assert state.take_deltas({100, 200}, [L1])[L1] == _c(8, stot=2)
    # 100 read one last time, then exits: its remainder is reported once
    state.observe(L1, 100, _c(20, stot=1))
    assert state.take_deltas({200}, [L1])[L1] == _c(5)
    assert set(state.seen[L1]) == {"200"}
    # persisted and loaded again: nothing counted twice
    path = tmp_path / "hb.state"
    state.save(path)
    again = CounterState.load(path)
    again.observe(L1, 200, _c(4, stot=2))
    assert again.take_deltas({200}, [L1])[L1] == _c(1)


def test_a_listener_left_out_keeps_its_counts() -> None:
    running = os.getpid()  # a live process stands for L2's worker
    state = CounterState()
    state.observe(L1, 100, _c(10))
    state.observe(L2, running, _c(7))
    assert state.take_deltas({100}, [L1]) == {L1: _c(10)}  # L2's LB unreadable now
    assert state.take_deltas({100, running}, [L1, L2])[L2] == _c(7)


def test_a_listener_left_out_after_its_workers_exited_keeps_its_counts() -> None:
    """Reloads in a row: the old workers drained and exited while the LB could
    not be read (master re-executing), and the new worker was not seen yet."""
    state = CounterState()
    gone = 4_999_999  # above the kernel's largest pid_max: never a live process
    state.observe(L1, gone, _c(10))
    assert state.take_deltas({gone}, [L1])[L1] == _c(10)
    state.observe(L1, gone, _c(18))  # its last read before it exited
    assert state.take_deltas(set(), []) == {}  # the worker is gone; L1 left out
    assert state.take_deltas({200}, [L1])[L1] == _c(8)


def test_a_reused_pid_keeps_the_old_process_remainder() -> None:
    state = CounterState()
    state.observe(L1, 100, _c(10))
    state.take_deltas({100}, [L1])
    state.observe(L1, 100, _c(25))  # read last, unreported
    state.observe(L1, 100, _c(4))  # a new process with the same pid
    assert state.take_deltas({100}, [L1])[L1] == _c(19)


def test_the_earlier_state_file_is_read_as_reported(tmp_path: Path) -> None:
    path = tmp_path / "hb.state"
    path.write_text(json.dumps({L1: {"100": _c(10)}}))
    state = CounterState.load(path)
    state.observe(L1, 100, _c(12))
    assert state.take_deltas({100}, [L1])[L1] == _c(2)


def test_a_pending_heartbeat_is_sent_after_a_crash_with_its_sequence(tmp_path: Path) -> None:
    """The sender died after persisting heartbeat 7 and before sending it."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(5)
    base = tmp_path / "base"
    pem = tmp_path / "unused.pem"  # the sender reads no certificate; the parser wants a file
    pem.write_text("")
    config = agent_config.AgentSettings(
        amphora_id="33333333-3333-3333-3333-333333333333", base_path=str(base),
        agent_server_ca=str(pem), agent_server_cert=str(pem),
        controllers=[f"127.0.0.1:{sink.getsockname()[1]}"], heartbeat_key="k")
    config_file = tmp_path / "agent.conf"
    config_file.write_text(config.render())
    pending = heartbeat.message(config.amphora_id, 7, {L1: {"status": "OPEN", "stats": {
        "tx": 5, "rx": 1, "conns": 0, "totconns": 1, "ereq": 0}}}, {})
    state = CounterState(seq=8, pending=pending)
    state.save(base / "heartbeat.state")
    try:
        sender = HeartbeatSender(str(config_file))
        assert sender.send_once() and sender.send_once()
        first = heartbeat.unwrap(sink.recvfrom(65535)[0], "k")
        second = heartbeat.unwrap(sink.recvfrom(65535)[0], "k")
        assert (first["seq"], first["listeners"]) == (7, pending["listeners"])
        assert (second["seq"], second["listeners"]) == (8, {})
        saved = json.loads((base / "heartbeat.state").read_text())
        assert saved["pending"] is None and saved["seq"] == 9 and saved["heartbeats_sent"] == 2
    finally:
        sink.close()
