"""What the heartbeat reports: listeners and pools of every running LB.

Counters and old workers: after a reload, the new workers start their
counters at zero while the old ones keep serving the connections they hold
(TCP sessions, in-flight HTTP transactions) until those end, and HAProxy adds
a session's bytes to the counters only when it ends. Reading only the new
worker's stats socket, as upstream does, loses all of that. We read
``show stat`` from *every* live worker through the master CLI (``@!<pid>``)
and keep the last value seen per worker pid in a state file, so each
heartbeat reports, per listener, the sum over workers of what each counted
since the previous heartbeat. A worker seen for the first time counts from
zero; a counter that went down (pid reuse) counts from zero again; the state
file makes deltas survive an agent restart. What remains uncounted is what
an old worker adds in the instant between its last session ending and its
exit, i.e. the very last session it finishes.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from amphora_agent import fileutil
from amphora_agent.config import AgentConfig
from amphora_agent.haproxy import sockets
from amphora_agent.haproxy.layout import LbLayout, installed_lb_ids
from amphora_contract import vrrp as paths

LOG = logging.getLogger(__name__)
COUNTERS = {"tx": "bout", "rx": "bin", "totconns": "stot", "ereq": "ereq"}


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


def _load_state(path: Path) -> dict[str, dict[str, dict[str, int]]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def collect_stats(config: AgentConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(listeners, pools) as heartbeats carry them (docs/architecture.md); counters as deltas."""
    base = Path(config.base_path)
    state_path = config.heartbeat_state_path
    previous = _load_state(state_path)
    current: dict[str, dict[str, dict[str, int]]] = {}
    listeners: dict[str, Any] = {}
    pools: dict[str, Any] = {}
    for lb_id in installed_lb_ids(base):
        master = str(LbLayout(base, lb_id).master_socket)
        try:
            table = sockets.show_proc(master)
            newest = {pid: sockets.show_stat(master, f"@!{pid} ") for pid in table.workers}
            older = {}
            for pid in table.old_workers:
                try:
                    older[pid] = sockets.show_stat(master, f"@!{pid} ")
                except sockets.SocketError:
                    pass  # it finished between show proc and now
        except sockets.SocketError:
            continue  # not running
        for pid, rows in {**older, **newest}.items():
            for row in rows:
                if row.get("svname") == "FRONTEND" and _is_uuid(row.get("pxname", "")):
                    key = row["pxname"]
                    seen = current.setdefault(key, {})
                    seen[str(pid)] = {c: _int(row.get(c)) for c in COUNTERS.values()}
        for rows in newest.values():
            _listener_and_pool_status(rows, listeners, pools)
        for rows in older.values():  # connections an old worker still serves
            for row in rows:
                if row.get("svname") == "FRONTEND" and row.get("pxname") in listeners:
                    listeners[row["pxname"]]["stats"]["conns"] += _int(row.get("scur"))
    for listener_id, entry in listeners.items():
        workers = current.get(listener_id, {})
        before = previous.get(listener_id, {})
        stats = entry["stats"]
        for name, column in COUNTERS.items():
            delta = 0
            for pid, counters in workers.items():
                now, then = counters[column], before.get(pid, {}).get(column, 0)
                delta += now - then if now >= then else now
            stats[name] = delta
    try:
        fileutil.atomic_write(state_path, json.dumps(current).encode())
    except OSError as exc:
        LOG.warning("cannot persist heartbeat counters: %s", exc)
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


def should_send_heartbeat(config: AgentConfig) -> bool:
    """Silence is how a failed amphora asks to be failed over: when VRRP is
    configured but keepalived is not running, send nothing (the VRRP guard,
    amphora_agent/vrrp/guard.py, removes the VIP at the same time)."""
    if not os.path.exists(os.path.join(paths.check_script_dir(config.base_path),
                                       paths.CONFIG_NAME)):
        return True
    from amphora_agent.services import make_service_manager
    from amphora_agent.vrrp.keepalived import SERVICE_NAME

    return make_service_manager(config).is_running(SERVICE_NAME)
