"""Manifest-to-Glance mapping, tags, formats and checksums (no Glance needed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from controller_stub import images

MANIFEST = {
    "build_id": "0f6f5e0e-4c0a-4b8e-9d59-0d1c2b3a4f5e", "build_time": "2026-11-23T20:00:00Z",
    "amphora_agent_version": "0.1.0", "amphora_agent_git_revision": "abc",
    "haproxy_version": "2.6.12-1+deb12u2", "openssl_version": "3.0.17-1~deb12u2",
    "keepalived_version": "1:2.2.7-1+b2", "os_distro": "debian", "os_version": "12",
    "os_release": "bookworm", "architecture": "x86_64", "kernel_version": "6.1.0-40-amd64",
    "builder": {"options": {}},
}


def test_properties_carry_the_manifest_versions() -> None:
    props = images.properties_from_manifest(MANIFEST)
    assert props["amphora_agent_version"] == "0.1.0"
    assert props["haproxy_version"] == "2.6.12-1+deb12u2"
    assert props["openssl_version"] == "3.0.17-1~deb12u2"
    assert props["keepalived_version"] == "1:2.2.7-1+b2"
    assert (props["os_distro"], props["os_version"], props["architecture"]) == \
        ("debian", "12", "x86_64")
    assert props["amphora_build_id"] == MANIFEST["build_id"]
    assert props["amphora_build_time"] == MANIFEST["build_time"]
    assert all(isinstance(v, str) for v in props.values())
    assert "builder" not in props


def test_incomplete_manifest_is_refused() -> None:
    broken = {k: v for k, v in MANIFEST.items() if k not in ("haproxy_version", "build_id")}
    with pytest.raises(images.ImageError, match="build_id, haproxy_version"):
        images.properties_from_manifest(broken)


def test_manifest_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(images.ImageError, match="cannot read manifest"):
        images.load_manifest(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(images.ImageError, match="is not JSON"):
        images.load_manifest(bad)
    bad.write_text("[]")
    with pytest.raises(images.ImageError, match="not a JSON object"):
        images.load_manifest(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(MANIFEST))
    assert images.load_manifest(good)["haproxy_version"] == "2.6.12-1+deb12u2"


def test_tags_always_include_amphora_once() -> None:
    assert images.validate_tags([]) == ["amphora"]
    assert images.validate_tags(["gold", "amphora", "gold"]) == ["amphora", "gold"]
    for bad in ("", "a,b", "a/b", "x" * 256):
        with pytest.raises(images.ImageError, match="invalid tag"):
            images.validate_tags([bad])


def test_formats_follow_the_file_name(tmp_path: Path) -> None:
    assert images.image_formats(Path("a.qcow2")) == ("qcow2", "bare")
    assert images.image_formats(Path("a.raw")) == ("raw", "bare")
    assert images.image_formats(Path("a.tar")) == ("raw", "compressed")
    with pytest.raises(images.ImageError, match="disk format"):
        images.image_formats(Path("a.vmdk"))


def test_checksum_file_is_verified(tmp_path: Path) -> None:
    image = tmp_path / "a.qcow2"
    image.write_bytes(b"image")
    assert images.verify_checksum(image) is None
    digest = hashlib.sha256(b"image").hexdigest()
    (tmp_path / "a.qcow2.sha256").write_text(f"{digest}  a.qcow2\n")
    assert images.verify_checksum(image) == digest
    image.write_bytes(b"imagf")
    with pytest.raises(images.ImageError, match="damaged"):
        images.verify_checksum(image)
