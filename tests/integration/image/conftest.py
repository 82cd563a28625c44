"""Fixtures for the image tests: a real Glance, and small real images to upload."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.glance_fixture import GlanceServer, glance  # noqa: F401

MakeImage = Callable[..., Path]


@pytest.fixture
def glance_conn(glance: GlanceServer):  # noqa: F811
    from controller_stub import images

    return images.connect(endpoint=glance.url)


@pytest.fixture
def make_image(tmp_path: Path) -> MakeImage:
    """A real (empty) qcow2 with a manifest and checksum beside it, as image-create.sh writes."""

    def make(name: str = "amphora", **overrides: str) -> Path:
        image = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"],
                       check=True)
        manifest = {
            "manifest_version": 1, "build_id": str(uuid.uuid4()),
            "build_time": "2026-11-23T20:00:00Z", "amphora_agent_version": "0.1.0",
            "amphora_agent_git_revision": "abc", "haproxy_version": "2.6.12-1+deb12u2",
            "openssl_version": "3.0.17-1~deb12u2", "keepalived_version": "1:2.2.7-1+b2",
            "kernel_version": "6.1.0-40-amd64", "os_distro": "debian", "os_version": "12",
            "os_release": "bookworm", "architecture": "x86_64", "builder": {},
            **overrides,
        }
        Path(f"{image}.manifest.json").write_text(json.dumps(manifest))
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        Path(f"{image}.sha256").write_text(f"{digest}  {image.name}\n")
        return image

    return make
