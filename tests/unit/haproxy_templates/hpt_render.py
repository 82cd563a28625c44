"""Render an LB into a tmp agent layout and check it with the real HAProxy."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from hpt_cases import AMP_A, GOLDEN_TARGET
from hpt_haproxy import Checked, haproxy_check
from hpt_pki import PKI

from haproxy_templates import LoadBalancer, RenderOptions, Target, peer_name, render


def _short_dir(tmp_path: Path) -> Path:
    link = Path(tempfile.mkdtemp(prefix="hpt", dir="/tmp"))
    _CLEANUP.append(link)
    return link


_CLEANUP: list[Path] = []


def cleanup() -> None:
    while _CLEANUP:
        shutil.rmtree(_CLEANUP.pop(), ignore_errors=True)


def render_checked(doc: dict[str, Any] | LoadBalancer, tmp_path: Path, pki: PKI, *,
                   target: Target = GOLDEN_TARGET, amphora_id: str = AMP_A,
                   options: RenderOptions | None = None) -> tuple[str, Checked]:
    """Render with tmp base/cert dirs (certs installed), run ``haproxy -c -L peer``."""
    lb = doc if isinstance(doc, LoadBalancer) else LoadBalancer.from_dict(doc)
    # UNIX socket paths are limited to 97 bytes, so the agent layout goes in a short
    # directory next to tmp_path rather than under pytest's long one.
    base = _short_dir(tmp_path) / "base"
    certs = tmp_path / "certs"
    (base / lb.id).mkdir(parents=True, exist_ok=True)
    (base / lb.id / "servers-state").write_text("1\n")
    pki.install(certs, lb.id)
    opts = replace(options or RenderOptions(), base_path=str(base), cert_dir=str(certs))
    text = render(lb, amphora_id=amphora_id, target=target, options=opts)
    cfg = base / lb.id / "haproxy.cfg"
    cfg.write_text(text)
    return text, haproxy_check(cfg, peer_name(amphora_id))


def base_dir_of(text: str) -> str:
    """The base_path a rendered config uses (from its stats socket line)."""
    for line in text.splitlines():
        if line.strip().startswith("stats socket "):
            sock = line.split('"')[1]
            return sock.rsplit("/", 1)[0]
    raise AssertionError("no stats socket")


def assert_valid(checked: Checked, text: str) -> None:
    assert checked.returncode == 0, f"haproxy -c failed:\n{checked.output}\n---\n{text}"
    assert checked.warnings == [], f"haproxy -c warned:\n{checked.output}\n---\n{text}"
