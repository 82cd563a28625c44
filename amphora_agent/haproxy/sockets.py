"""HAProxy's stats socket (runtime API) and master CLI, spoken directly."""

from __future__ import annotations

import csv
import io
import re
import socket
from dataclasses import dataclass, field

TIMEOUT = 5.0


class SocketError(RuntimeError):
    pass


def command(path: str, line: str, timeout: float = TIMEOUT) -> str:
    """Send one command line and read the reply until HAProxy closes."""
    if "\n" in line or "\r" in line:
        raise ValueError("a runtime command is a single line")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(line.encode() + b"\n")
            # The master CLI answers and closes only once it sees our EOF.
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise SocketError(f"{path}: {exc}") from exc
    return b"".join(chunks).decode(errors="replace")


def show_stat(path: str, prefix: str = "") -> list[dict[str, str]]:
    """``show stat`` as dicts (``prefix`` targets a worker via the master CLI)."""
    return parse_stat(command(path, f"{prefix}show stat"))


def parse_stat(text: str) -> list[dict[str, str]]:
    """The CSV of ``show stat`` as dicts."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise SocketError(f"unexpected show stat reply: {text[:200]!r}")
    reader = csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    return list(reader)


@dataclass
class ProcessTable:
    master_pid: int
    reloads: int
    failed: int
    workers: list[int] = field(default_factory=list)  # newest first
    old_workers: list[int] = field(default_factory=list)


_MASTER_RE = re.compile(r"^(\d+)\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?")
_WORKER_RE = re.compile(r"^(\d+)\s+worker\s+\[?(\d+)\]?")


def show_proc(master_socket: str) -> ProcessTable:
    """Parse the master CLI's ``show proc``.

    Workers of the current generation have 0 reloads; older ones (still
    draining connections) have a higher count.
    """
    text = command(master_socket, "show proc")
    table: ProcessTable | None = None
    for line in text.splitlines():
        master = _MASTER_RE.match(line)
        if master:
            table = ProcessTable(int(master.group(1)), int(master.group(2)),
                                 int(master.group(3) or 0))
            continue
        worker = _WORKER_RE.match(line)
        if worker and table is not None:
            pid, generation = int(worker.group(1)), int(worker.group(2))
            (table.workers if generation == 0 else table.old_workers).append(pid)
    if table is None:
        raise SocketError(f"unexpected show proc reply: {text[:200]!r}")
    return table
