"""Run the real ``haproxy -c`` on rendered configs (no shell, tmp files only)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


@dataclass
class Checked:
    returncode: int
    output: str

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.output.splitlines()
                if "[WARNING]" in line or "[ALERT]" in line]


def haproxy_check(cfg_path: Path, peer: str) -> Checked:
    proc = subprocess.run([HAPROXY, "-c", "-f", str(cfg_path), "-L", peer],
                          capture_output=True, text=True, timeout=120, check=False)
    return Checked(proc.returncode, proc.stdout + proc.stderr)
