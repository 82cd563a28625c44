"""HAProxy's master CLI spoken by hand, for baselines measured outside the agent.

The bench may not use the agent's own modules: a baseline built from them
would measure the agent's code on both sides of the comparison.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

_MASTER_RE = re.compile(r"(\d+)\s+master\s+(\d+)")


def lb_files(base_path: Path, lb_id: str) -> tuple[Path, Path, Path]:
    """(config, master socket, user/group file) where the agent keeps them for ``lb_id``."""
    directory = base_path / lb_id
    return (directory / "haproxy.cfg", directory / "master.sock",
            base_path / "haproxy-default-user-group.conf")


def command(master_socket: Path, line: str, timeout: float = 5.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(master_socket))
        sock.sendall(line.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)  # the master CLI answers once it sees EOF
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def reloads(master_socket: Path, timeout: float = 10.0) -> int:
    """The master's reload count, once it answers again after a re-exec."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            for line in command(master_socket, "show proc").splitlines():
                found = _MASTER_RE.match(line)
                if found:
                    return int(found.group(2))
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{master_socket}: no answer to show proc")
        time.sleep(0.01)
