"""Minimal Debian roots that hold one release's HAProxy, to run that HAProxy's own ``-c``.

The images take HAProxy from Debian: bookworm's 2.6 is this host's, trixie's
3.0 and the next release's 3.2 (unstable, what ``--haproxy-source`` builds
from) live in debootstrap roots cached under ``~/.cache/amphora-image/roots``
(``AMPHORA_ROOTS_CACHE``): about 30-60 s each the first time, then reused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("AMPHORA_ROOTS_CACHE",
                            Path.home() / ".cache" / "amphora-image" / "roots"))
SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def host_mirror() -> str:
    """The Debian archive this host's apt uses (the first ``URIs:``/``deb`` entry)."""
    for path in SOURCES:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2 and "security" not in words[1]:
                return words[1]
    raise RuntimeError("no Debian archive in this host's apt sources")


def haproxy_root(suite: str) -> Path:
    """A cached minbase root of ``suite`` with haproxy and openssl installed."""
    root = CACHE / suite
    if (root / "usr/sbin/haproxy").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = CACHE / f"{suite}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", "--include=haproxy,openssl", suite,
                    str(partial), host_mirror()], check=True, capture_output=True,
                   timeout=1200)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return root
