"""Paths and loaders shared by the image-builder unit tests."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ELEMENTS = REPO / "elements"
DIB_VENV = REPO / ".venv-dib"
OUR_ELEMENTS = ("amphora-agent", "amphora-hardening", "amphora-manifest", "haproxy-amphora",
                "keepalived-amphora", "amphora-slim")


def load_script(path: Path) -> types.ModuleType:
    """Import a Python script without a .py suffix (element hooks) as a module."""
    loader = importlib.machinery.SourceFileLoader(path.name.replace("-", "_"), str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def dib_bin() -> Path:
    """diskimage-builder's virtualenv; `make test` creates it (make .venv-dib)."""
    bin_dir = DIB_VENV / "bin"
    if not (bin_dir / "dib-lint").exists():
        pytest.fail(f"diskimage-builder is not installed in {DIB_VENV}: run 'make .venv-dib'")
    return bin_dir
