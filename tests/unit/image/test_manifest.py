"""The manifest generator reads the image's dpkg database and os-release and refuses gaps."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ELEMENTS, load_script

SCRIPT = ELEMENTS / "amphora-manifest/post-install.d/90-amphora-manifest"
PACKAGES = {
    "haproxy": "2.6.12-1+deb12u2",
    "openssl": "3.0.17-1~deb12u2",
    "keepalived": "1:2.2.7-1+b2",
    "ipvsadm": "1:1.31-1+b1",
    "linux-image-6.1.0-37-amd64": "6.1.140-1",
    "linux-image-6.1.0-40-amd64": "6.1.153-1",
}
BUILD_INFO = {
    "build_id": "0f6f5e0e-4c0a-4b8e-9d59-0d1c2b3a4f5e",
    "build_time": "2026-11-23T20:00:00Z",
    "amphora_agent_git_revision": "abc123",
    "builder": {"elements": ["debian-minimal", "amphora-agent"], "options": {"format": "qcow2"}},
}


def make_root(tmp_path: Path, packages: dict[str, str]) -> Path:
    root = tmp_path / "root"
    admin = root / "var/lib/dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    stanzas = [f"Package: {name}\nStatus: install ok installed\nPriority: optional\n"
               f"Architecture: amd64\nVersion: {version}\nMaintainer: test <t@example.org>\n"
               f"Description: {name}\n" for name, version in packages.items()]
    stanzas.append("Package: removed-thing\nStatus: deinstall ok config-files\n"
                   "Architecture: amd64\nVersion: 9\nMaintainer: t <t@example.org>\n"
                   "Description: gone\n")
    (admin / "status").write_text("\n".join(stanzas))
    (admin / "available").write_text("")
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
        "VERSION_CODENAME=bookworm\n")
    return root


def run(root: Path, tmp_path: Path, info: dict[str, object] | None = BUILD_INFO,
        agent_python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    info_path = tmp_path / "build-info.json"
    if info is not None:
        info_path.write_text(json.dumps(info))
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), "--build-info", str(info_path),
         "--agent-python", agent_python, "--haproxy", shutil.which("haproxy") or "haproxy"],
        capture_output=True, text=True, timeout=60)


def test_manifest_records_versions_from_the_image(tmp_path: Path) -> None:
    root = make_root(tmp_path, PACKAGES)
    done = run(root, tmp_path)
    assert done.returncode == 0, done.stderr
    path = root / "etc/amphora/manifest.json"
    assert path.stat().st_mode & 0o777 == 0o644
    manifest = json.loads(path.read_text())
    assert manifest["manifest_version"] == 1
    assert manifest["haproxy_version"] == "2.6.12-1+deb12u2"
    assert manifest["openssl_version"] == "3.0.17-1~deb12u2"
    assert manifest["keepalived_version"] == "1:2.2.7-1+b2"
    assert manifest["ipvsadm_version"] == "1:1.31-1+b1"
    # the newest of two kernels, by Debian version order
    assert manifest["kernel_version"] == "6.1.0-40-amd64"
    assert manifest["kernel_package_version"] == "6.1.153-1"
    assert (manifest["os_distro"], manifest["os_version"], manifest["os_release"]) == \
        ("debian", "12", "bookworm")
    assert manifest["amphora_agent_version"] == importlib.metadata.version("amphora")
    assert manifest["amphora_agent_git_revision"] == "abc123"
    assert manifest["build_id"] == BUILD_INFO["build_id"]
    assert manifest["build_time"] == BUILD_INFO["build_time"]
    assert manifest["builder"]["options"] == {"format": "qcow2"}
    native = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                            text=True).stdout.strip()
    assert manifest["dpkg_architecture"] == native
    assert manifest["architecture"] == {"amd64": "x86_64", "arm64": "aarch64"}.get(native, native)
    # build facts come from the binary's own -vv (here the host's Debian 12 HAProxy)
    assert {"OPENSSL", "PROMEX"} <= set(manifest["haproxy_build_options"].split())
    assert manifest["haproxy_services"] == "prometheus-exporter"
    assert manifest["haproxy_openssl_version"].startswith("3.0.")
    # the same JSON is printed for the build log
    assert json.loads(done.stdout.split("\n", 1)[1]) == manifest


def test_missing_package_fails_the_build(tmp_path: Path) -> None:
    packages = {k: v for k, v in PACKAGES.items() if k != "haproxy"}
    root = make_root(tmp_path, packages)
    done = run(root, tmp_path)
    assert done.returncode == 1
    assert "cannot determine: haproxy_version" in done.stderr
    assert not (root / "etc/amphora/manifest.json").exists()


def test_no_kernel_and_no_agent_are_named(tmp_path: Path) -> None:
    packages = {k: v for k, v in PACKAGES.items() if not k.startswith("linux-image")}
    root = make_root(tmp_path, packages)
    done = run(root, tmp_path, agent_python=str(tmp_path / "no-python"))
    assert done.returncode == 1
    assert "amphora_agent_version" in done.stderr
    assert "kernel_version" in done.stderr


def test_missing_build_info_is_an_error(tmp_path: Path) -> None:
    root = make_root(tmp_path, PACKAGES)
    done = run(root, tmp_path, info=None)
    assert done.returncode == 1
    assert "build-info.json" in done.stderr


@pytest.mark.parametrize(("dpkg_arch", "expected"), [("amd64", "x86_64"), ("arm64", "aarch64")])
def test_architecture_names_follow_glance(dpkg_arch: str, expected: str) -> None:
    module = load_script(SCRIPT)
    assert module.ARCHITECTURES[dpkg_arch] == expected
