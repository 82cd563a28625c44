"""How ``amphora-ctl`` shows API answers: rich tables and trees, or JSON; and the
``--wait`` display that follows provisioning_status until it settles."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

PENDING = ("PENDING_CREATE", "PENDING_UPDATE", "PENDING_DELETE")
_COLOURS = {"ACTIVE": "green", "ONLINE": "green", "ERROR": "red", "OFFLINE": "yellow",
            "DEGRADED": "yellow", "NO_MONITOR": "cyan"}


def console(stderr: bool = False) -> Console:
    """Rich's console; into a pipe, wide enough that ids are never cut (rich would use 80
    columns), unless ``$COLUMNS`` says otherwise."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=200 if wide else None)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(v["id"] if isinstance(v, dict) and "id" in v else str(v)
                         for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return ""
    text = str(value)
    colour = _COLOURS.get(text)
    return f"[{colour}]{text}[/]" if colour else text


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None,
          as_json: bool = False) -> None:
    if as_json:
        emit_json(list(rows))
        return
    out = Table(title=title, header_style="bold")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*(_cell(row.get(c)) for c in columns))
    console().print(out)


def record(obj: dict[str, Any], as_json: bool = False) -> None:
    """One object as a two-column field/value table."""
    if as_json:
        emit_json(obj)
        return
    out = Table(show_header=True, header_style="bold")
    out.add_column("Field")
    out.add_column("Value")
    for key in sorted(obj):
        out.add_row(key, _cell(obj[key]))
    console().print(out)


def _label(kind: str, node: dict[str, Any]) -> str:
    name = f" {node['name']}" if node.get("name") else ""
    extra = (f" {node['address']}:{node['protocol_port']}" if "address" in node else "")
    return (f"[bold]{kind}[/]{name} {node['id']}{extra}  "
            f"{_cell(node.get('provisioning_status'))} / "
            f"{_cell(node.get('operating_status'))}")


def status_tree(statuses: dict[str, Any]) -> None:
    """Octavia's ``/loadbalancers/{id}/status`` body as a tree."""
    lb = statuses["loadbalancer"]
    root = Tree(_label("loadbalancer", lb))
    for listener in lb.get("listeners", []):
        branch = root.add(_label("listener", listener))
        for pool in listener.get("pools", []):
            pool_branch = branch.add(_label("pool", pool))
            if pool.get("health_monitor"):
                pool_branch.add(_label("healthmonitor", pool["health_monitor"]))
            for member in pool.get("members", []):
                pool_branch.add(_label("member", member))
    console().print(root)


def follow(what: str, poll: Callable[[], dict[str, Any] | None], *, timeout: float,
           interval: float = 0.5, deleting: bool = False,
           initial: str | None = None) -> dict[str, Any] | None:
    """Poll until ``provisioning_status`` leaves PENDING_* (or the object is gone when
    ``deleting``), showing each status it moves through, from ``initial`` (the change's
    answer) on; ERROR and timeouts raise."""
    err = console(stderr=True)
    last: str | None = initial
    if initial:
        err.print(f"{what}: {initial}")
    deadline = time.monotonic() + timeout
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task(f"{what}: ...", total=None)
        while True:
            obj = poll()
            status = "DELETED" if obj is None else obj.get("provisioning_status", "")
            if status != last:
                progress.console.print(f"{what}: {status}")
                progress.update(task, description=f"{what}: {status}")
                last = status
            if obj is None:
                if deleting:
                    return None
                raise RuntimeError(f"{what} disappeared")
            if status == "ERROR":
                reason = obj.get("status_reason") or ""
                raise RuntimeError(f"{what} went to ERROR{': ' + reason if reason else ''}")
            if status not in PENDING and not deleting:
                return obj
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} still {status} after {timeout:.0f} s")
            time.sleep(interval)

