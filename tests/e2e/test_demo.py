"""`make demo` end to end: it exits 0, the controller replaces the killed
MASTER amphora (outage measured, replacement BACKUP, LB ONLINE), and nothing
it created is left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from controller_stub.compute import nsutil

pytestmark = pytest.mark.root


def _processes_mentioning(*needles: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            found.append(f"{entry}: {cmdline}")
    return found


def test_make_demo() -> None:
    run = subprocess.run([sys.executable, "-m", "controller_stub.demo"], capture_output=True,
                         text=True, timeout=240, check=False,
                         cwd=Path(__file__).resolve().parents[2])
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    fabric = re.search(r"fabric (ampx[0-9a-f]{4}) in (/tmp/amp-demo-\S+)", out)
    assert fabric is not None, out
    prefix, workdir = fabric.groups()
    assert re.search(r"failover started \d+\.\d+s after the kill", out), out
    outage = re.search(r"data-plane outage (\d+) ms \((\d+) of (\d+) probes failed\)", out)
    assert outage is not None, out
    assert int(outage.group(3)) > 0
    assert re.search(r"new amphora \S+ BACKUP ALLOCATED", out), out
    assert "MASTER (kept the VIP)" in out, out
    assert "load balancer ONLINE" in out, out
    assert out.rstrip().endswith("left behind: nothing"), out
    assert nsutil.listed(prefix) == []
    assert _processes_mentioning(workdir, f"--fabric {prefix}") == []
    assert not Path(workdir).exists()
