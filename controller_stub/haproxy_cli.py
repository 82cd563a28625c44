"""HAProxy's master CLI and runtime API read from outside the agent.

Tests check what the agent did to HAProxy, and benchmarks measure baselines
without the agent; both must not use the agent's own socket client for it, or
the agent's code would be checking (or timing) itself.
"""

from __future__ import annotations

import csv
import io
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

_MASTER_RE = re.compile(r"(\d+)\s+master\s+(\d+)")
_WORKER_RE = re.compile(r"(\d+)\s+worker\s+\[?(\d+)\]?")


def command(path: str | Path, line: str, timeout: float = 5.0) -> str:
    """One command on a stats or master socket; the reply once HAProxy closes."""
    if "\n" in line or "\r" in line:
        raise ValueError("one command line only")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(line.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)  # the master CLI answers once it sees EOF
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def show_stat(path: str | Path, prefix: str = "") -> list[dict[str, str]]:
    """``show stat`` as dicts; ``prefix`` (``@!PID ``) targets one worker via the master CLI."""
    text = command(path, f"{prefix}show stat")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"not a show stat reply: {text[:200]!r}")
    return list(csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]]))))


@dataclass
class Processes:
    """The master's ``show proc``: old workers are still draining a previous generation."""

    master_pid: int
    reloads: int
    workers: list[int] = field(default_factory=list)
    old_workers: list[int] = field(default_factory=list)


def show_proc(master_socket: str | Path) -> Processes:
    text = command(master_socket, "show proc")
    table: Processes | None = None
    for line in text.splitlines():
        if master := _MASTER_RE.match(line):
            table = Processes(int(master.group(1)), int(master.group(2)))
        elif (worker := _WORKER_RE.match(line)) and table is not None:
            generation = int(worker.group(2))
            (table.workers if generation == 0 else table.old_workers).append(
                int(worker.group(1)))
    if table is None:
        raise ValueError(f"not a show proc reply: {text[:200]!r}")
    return table


def reloads(master_socket: str | Path, timeout: float = 10.0) -> int:
    """The master's reload count, once it answers again after a re-exec."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return show_proc(master_socket).reloads
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.01)
