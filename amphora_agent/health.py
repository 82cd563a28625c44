"""What the heartbeat reports: listeners and pools of every running LB.

Counters that add up (docs/agent.md, "Heartbeat counters"). HAProxy adds a
session's bytes to its counters when the session ends, and after a reload the
old worker keeps serving the sessions it holds, then exits as soon as the
last one ends: its last counters die with it. So the heartbeat process holds
a prompt-mode session open on the stats socket of every current worker. A
reload turns that worker into an old one, and our open session keeps it alive
(HAProxy waits for every session, ours included) until every frontend of it
shows no session left; then its final counters are read and persisted, and
only then is the session closed, letting the worker exit.

Per listener and worker pid the state file keeps ``seen`` (the last values
read) and ``sent`` (the values the last heartbeat reported up to); a
heartbeat reports ``seen - sent`` summed over workers. A worker seen for the
first time counts from zero; a counter that went down (pid reuse) starts a
new entry.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amphora_agent import fileutil
from amphora_agent.config import AgentConfig
from amphora_agent.config import load as load_config
from amphora_agent.haproxy import cfgfile, sockets
from amphora_agent.haproxy.layout import LbLayout, installed_lb_ids

LOG = logging.getLogger(__name__)
COUNTERS = {"tx": "bout", "rx": "bin", "totconns": "stot", "ereq": "ereq"}
# Octavia's agent name first; the earlier name of this agent second.
VRRP_CONFIGS = ("vrrp/octavia-keepalived.conf", "vrrp/keepalived.conf")
PROMPT = b"\n> "
SESSION_TIMEOUT = 3.0
MAX_REPLY = 8 << 20
HOLD_WAIT = 2.0

Counters = dict[str, int]
PerWorker = dict[str, dict[str, Counters]]  # listener id -> worker key -> counters


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _is_uuid(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def member_status(row: dict[str, str]) -> str:
    status = (row.get("status") or "").upper()
    if status.startswith("MAINT"):
        return "MAINT"
    if status.startswith("DRAIN") or status == "NOLB":
        return "DRAIN"
    if status == "NO CHECK":
        return "no check"
    if status.startswith("UP"):
        return "DRAIN" if _int(row.get("weight")) == 0 and row.get("weight") else "UP"
    return "DOWN"


@dataclass
class CounterState:
    """What the heartbeat state file holds; see the module docstring."""

    seen: PerWorker = field(default_factory=dict)
    sent: PerWorker = field(default_factory=dict)
    seq: int = 0  # the next heartbeat's sequence number
    pending: dict[str, Any] | None = None  # a built message not yet handed to the network
    heartbeats_sent: int = 0

    @classmethod
    def load(cls, path: Path) -> CounterState:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        if data.get("version") != 2:  # the earlier file: listener -> pid -> reported values
            return cls(seen=copy.deepcopy(data), sent=data)
        pending = data.get("pending")
        return cls(seen=data.get("seen") or {}, sent=data.get("sent") or {},
                   seq=int(data.get("seq") or 0),
                   pending=pending if isinstance(pending, dict) else None,
                   heartbeats_sent=int(data.get("heartbeats_sent") or 0))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"version": 2, "seq": self.seq, "heartbeats_sent": self.heartbeats_sent,
                "pending": self.pending, "seen": self.seen, "sent": self.sent}
        fileutil.atomic_write(path, json.dumps(body, separators=(",", ":")).encode())

    def observe(self, listener: str, worker: int, values: Counters) -> None:
        workers = self.seen.setdefault(listener, {})
        key = str(worker)
        before = workers.get(key)
        if before is not None and any(values[c] < before.get(c, 0) for c in values):
            # a new process with a reused pid: keep the old one's unsent remainder
            retired = f"{key}#{time.time_ns()}"
            workers[retired] = before
            sent = self.sent.get(listener, {})
            if key in sent:
                sent[retired] = sent.pop(key)
        workers[key] = values

    def take_deltas(self, alive: set[int], listeners: Iterable[str]) -> dict[str, Counters]:
        """Per listener of the message, what was seen since the last report;
        marks it reported. A listener left out (its LB could not be read this
        time) keeps its counts for a later heartbeat."""
        deltas: dict[str, Counters] = {}
        live = {str(pid) for pid in alive}
        for listener in listeners:
            workers = self.seen.get(listener, {})
            before = self.sent.get(listener, {})
            total = dict.fromkeys(COUNTERS.values(), 0)
            for key, values in workers.items():
                for column in total:
                    total[column] += values.get(column, 0) - before.get(key, {}).get(column, 0)
            deltas[listener] = total
            kept = {k: v for k, v in workers.items() if k in live}
            if kept:
                self.seen[listener] = kept
                self.sent[listener] = copy.deepcopy(kept)
            else:
                self.seen.pop(listener, None)
                self.sent.pop(listener, None)
        for listener in set(self.seen) - set(deltas):  # e.g. its LB was deleted
            # only once nothing is left to report: a listener is also left out
            # while its LB's master re-executes, and its workers may all have
            # exited meanwhile (the new one not yet seen)
            if self.seen[listener] == self.sent.get(listener) and not any(
                    key.isdigit() and os.path.exists(f"/proc/{key}")
                    for key in self.seen[listener]):
                self.seen.pop(listener)
                self.sent.pop(listener, None)
        return deltas


class WorkerSession:
    """A prompt-mode session on a worker's stats socket (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(SESSION_TIMEOUT)
            self.sock.connect(path)
            self.ask("prompt")
            info = self.ask("show info")
        except (OSError, sockets.SocketError):
            self.sock.close()
            raise
        self.pid = next((_int(line.partition(":")[2].strip()) for line in info.splitlines()
                         if line.startswith("Pid:")), 0)

    def ask(self, line: str) -> str:
        try:
            self.sock.sendall(line.encode() + b"\n")
            data = b""
            while not data.endswith(PROMPT):
                chunk = self.sock.recv(65536)
                if not chunk or len(data) > MAX_REPLY:
                    raise sockets.SocketError("stats session closed")
                data += chunk
        except OSError as exc:
            raise sockets.SocketError(str(exc)) from exc
        return data[:-len(PROMPT)].decode(errors="replace")

    def show_stat(self) -> list[dict[str, str]]:
        return sockets.parse_stat(self.ask("show stat"))

    def close(self) -> None:
        self.sock.close()


def _frontend_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r.get("svname") == "FRONTEND"]


def _stats_socket(layout: LbLayout) -> str | None:
    try:
        found = cfgfile.stats_socket(layout.config.read_text(errors="replace"))
    except OSError:
        return None
    return found[0] if found else None


class Collector:
    """Reads every worker of every running LB and keeps the counter state."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.state = CounterState.load(state_path)
        self.sessions: dict[str, dict[int, WorkerSession]] = {}  # lb id -> pid -> session

    def save(self) -> None:
        try:
            self.state.save(self.state_path)
        except OSError as exc:
            LOG.warning("cannot persist heartbeat counters: %s", exc)

    def _observe(self, pid: int, rows: list[dict[str, str]]) -> None:
        for row in _frontend_rows(rows):
            if _is_uuid(row.get("pxname", "")):
                self.state.observe(row["pxname"], pid,
                                   {c: _int(row.get(c)) for c in COUNTERS.values()})

    def poll(self, config: AgentConfig) -> None:
        """Hold every current worker; read and release drained old ones.

        Called several times a second by the sender, so that a worker is held
        before the reload that makes it old.
        """
        base = Path(config.base_path)
        lb_ids = installed_lb_ids(base)
        for lb_id in set(self.sessions) - set(lb_ids):
            for held in self.sessions.pop(lb_id).values():
                held.close()
        for lb_id in lb_ids:
            layout = LbLayout(base, lb_id)
            held = self.sessions.setdefault(lb_id, {})
            try:
                table = sockets.show_proc(str(layout.master_socket))
            except sockets.SocketError:
                continue
            for pid in list(held):
                if pid in table.workers:
                    continue
                session = held[pid]
                try:
                    rows = session.show_stat() if pid in table.old_workers else None
                except sockets.SocketError:
                    rows = None
                if rows is not None:
                    self._observe(pid, rows)
                    if any(_int(r.get("scur")) for r in _frontend_rows(rows)):
                        continue  # still draining
                    self.save()  # its last counters, persisted before it may exit
                    LOG.info("LB %s: old worker %d drained; released after reading %s",
                             lb_id, pid, {r["pxname"]: r.get("stot") for r in _frontend_rows(rows)})
                del held[pid]
                session.close()
            if any(pid not in held for pid in table.workers):
                path = _stats_socket(layout)
                if path is None:
                    continue
                try:
                    session = WorkerSession(path)
                except (OSError, sockets.SocketError):
                    continue
                if session.pid in table.workers and session.pid not in held:
                    LOG.info("LB %s: holding worker %d", lb_id, session.pid)
                    held[session.pid] = session
                    with contextlib.suppress(OSError):
                        fileutil.atomic_write(layout.heartbeat_held, json.dumps(
                            {"holder": os.getpid(), "held": sorted(held)}).encode(),
                            sync_dir=False)
                else:
                    session.close()

    def collect(self, config: AgentConfig) -> tuple[dict[str, Any], dict[str, Any], set[int]]:
        """(listeners, pools, live worker pids) with the counters read into the state."""
        base = Path(config.base_path)
        listeners: dict[str, Any] = {}
        pools: dict[str, Any] = {}
        alive: set[int] = set()
        for lb_id in installed_lb_ids(base):
            master = str(LbLayout(base, lb_id).master_socket)
            held = self.sessions.get(lb_id, {})
            try:
                table = sockets.show_proc(master)
            except sockets.SocketError:
                continue  # not running
            stats: dict[int, list[dict[str, str]]] = {}
            for pid in [*table.workers, *table.old_workers]:
                alive.add(pid)  # kept in the state while it runs, even if not read now
                try:
                    stats[pid] = (held[pid].show_stat() if pid in held
                                  else sockets.show_stat(master, f"@!{pid} "))
                except sockets.SocketError:
                    continue  # it finished between show proc and now
                self._observe(pid, stats[pid])
            for pid in table.workers:
                _listener_and_pool_status(stats.get(pid, []), listeners, pools)
            for pid in table.old_workers:  # connections an old worker still serves
                for row in _frontend_rows(stats.get(pid, [])):
                    if row.get("pxname") in listeners:
                        listeners[row["pxname"]]["stats"]["conns"] += _int(row.get("scur"))
        alive.update(pid for held in self.sessions.values() for pid in held)
        return listeners, pools, alive

    def close(self) -> None:
        for held in self.sessions.values():
            for session in held.values():
                session.close()
        self.sessions.clear()


def heartbeats_enabled(config: AgentConfig) -> bool:
    return bool(config.heartbeat_key and config.controller_ip_port_list)


def await_held(config: AgentConfig, layout: LbLayout, workers: list[int]) -> bool:
    """Before a reload: wait (briefly) until the heartbeat process holds the
    current workers, so that what they carry after the reload is counted."""
    with contextlib.suppress(Exception):  # the file, as PUT /1.0/config left it
        config = load_config(config.config_file) if config.config_file else config
    if not heartbeats_enabled(config) or not workers:
        return True
    deadline = time.monotonic() + HOLD_WAIT
    while True:
        try:
            data = json.loads(layout.heartbeat_held.read_text())
            # a file left by a heartbeat process that has died holds nothing
            alive = os.path.exists(f"/proc/{int(data['holder'])}")
            held = set(data["held"]) if alive else set()
        except (OSError, ValueError, TypeError, KeyError):
            held = set()
        if held.issuperset(workers):
            return True
        if time.monotonic() > deadline:
            LOG.warning("LB %s: reloading before the heartbeat process holds worker(s) %s; "
                        "what they carry after the reload may go uncounted",
                        layout.lb_id, workers)
            return False
        time.sleep(0.02)


def apply_deltas(listeners: dict[str, Any], deltas: dict[str, Counters]) -> None:
    for listener_id, entry in listeners.items():
        got = deltas.get(listener_id, {})
        for name, column in COUNTERS.items():
            entry["stats"][name] = got.get(column, 0)


def collect_stats(config: AgentConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """One collection and report, as a single heartbeat would take it (no held sessions)."""
    collector = Collector(config.heartbeat_state_path)
    listeners, pools, alive = collector.collect(config)
    apply_deltas(listeners, collector.state.take_deltas(alive, listeners))
    collector.save()
    return listeners, pools


def _listener_and_pool_status(rows: list[dict[str, str]], listeners: dict[str, Any],
                              pools: dict[str, Any]) -> None:
    for row in rows:
        name, kind = row.get("pxname", ""), row.get("svname", "")
        if kind == "FRONTEND" and _is_uuid(name):
            entry = listeners.setdefault(name, {"status": "OPEN", "stats": {
                "tx": 0, "rx": 0, "conns": 0, "totconns": 0, "ereq": 0}})
            if row.get("status") == "FULL":
                entry["status"] = "FULL"
            entry["stats"]["conns"] += _int(row.get("scur"))
        elif ":" in name and kind == "BACKEND":
            pool = pools.setdefault(name, {"status": "DOWN", "members": {}})
            pool["status"] = "UP" if row.get("status", "").startswith("UP") else "DOWN"
        elif ":" in name and kind not in ("FRONTEND", "BACKEND"):
            pool = pools.setdefault(name, {"status": "DOWN", "members": {}})
            pool["members"][kind] = member_status(row)


def keepalived_config(config: AgentConfig) -> str | None:
    """The amphora's VRRP keepalived config, if one is installed."""
    for name in VRRP_CONFIGS:
        path = os.path.join(config.base_path, name)
        if os.path.exists(path):
            return path
    return None


def keepalived_running(config: AgentConfig, conf: str) -> bool:
    """A live keepalived process that runs ``conf``, seen in /proc: whatever
    started it (systemd unit, the agent's direct supervisor, by hand)."""
    names = {"keepalived", os.path.basename(config.keepalived_cmd)}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
            with open(f"/proc/{entry.name}/stat") as handle:
                state = handle.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state == "Z" or os.path.basename(argv[0]) not in names:
            continue
        if conf in argv or f"--use-file={conf}" in argv or f"-f{conf}" in argv:
            return True
    return False


def should_send_heartbeat(config: AgentConfig) -> bool:
    """Silence is how a failed amphora asks to be failed over: when VRRP is
    configured but keepalived is not running, send nothing (the VRRP guard,
    amphora_agent/vrrp/guard.py, removes the VIP at the same time)."""
    conf = keepalived_config(config)
    if conf is None:
        return True
    if keepalived_running(config, conf):
        _SILENT.discard(conf)
        return True
    if conf not in _SILENT:  # once, not every interval
        LOG.error("keepalived is configured (%s) but not running: sending no heartbeats", conf)
        _SILENT.add(conf)
    return False


_SILENT: set[str] = set()
