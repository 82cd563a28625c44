"""Fixtures for haproxy_templates tests: PKI, tmp cert/base dirs, haproxy -c."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hpt_pki import PKI, make_pki
from hpt_render import cleanup


@pytest.fixture(autouse=True)
def _remove_short_dirs():
    yield
    cleanup()


@pytest.fixture(scope="session")
def pki() -> PKI:
    return make_pki()


@pytest.fixture(scope="session")
def haproxy_bin() -> str:
    path = shutil.which("haproxy") or "/usr/sbin/haproxy"
    # Not a skip: these tests are the acceptance gate and must run where HAProxy is.
    assert Path(path).exists(), "haproxy is required for the rendering tests"
    return path
