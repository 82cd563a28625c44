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
LB_ID = "0b7e2d3c-1a2b-4c5d-8e9f-0000000000aa"
AMP = "0b7e2d3c-1a2b-4c5d-8e9f-0000000000ab"
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


def tls_lb(alpn: list[str]) -> dict:
    """TLS termination offering ``alpn``, re-encrypting to members that may speak h2."""
    pool = {"id": "0b7e2d3c-1a2b-4c5d-8e9f-0000000000b1", "protocol": "HTTP",
            "lb_algorithm": "ROUND_ROBIN", "tls_enabled": True,
            "alpn_protocols": ["h2", "http/1.1"],
            "members": [{"id": "0b7e2d3c-1a2b-4c5d-8e9f-0000000000c1",
                         "address": "192.0.2.11", "protocol_port": 8443}]}
    listener = {"id": "0b7e2d3c-1a2b-4c5d-8e9f-0000000000d1",
                "protocol": "TERMINATED_HTTPS", "protocol_port": 443,
                "default_tls_container_ref": "default.pem", "alpn_protocols": alpn,
                "tls_versions": ["TLSv1.2", "TLSv1.3"],
                "default_pool_id": pool["id"]}
    return {"id": LB_ID, "vip_address": "203.0.113.10", "listeners": [listener],
            "pools": [pool], "amphorae": [{"id": AMP, "role": "STANDALONE"}]}
