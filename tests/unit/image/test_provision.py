"""amphora-provision installs controller-injected files safely and finds the management NICs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import ELEMENTS

SCRIPT = ELEMENTS / "amphora-agent/static/usr/local/sbin/amphora-provision"


def make_drive(tmp_path: Path, files: dict[str, bytes], hostname: str = "amp-1") -> Path:
    drive = tmp_path / "drive"
    (drive / "openstack/latest").mkdir(parents=True)
    (drive / "openstack/content").mkdir()
    entries = []
    for index, (path, data) in enumerate(files.items()):
        name = f"{index:04d}"
        (drive / "openstack/content" / name).write_bytes(data)
        entries.append({"path": path, "content_path": f"/content/{name}"})
    meta = {"uuid": "x", "hostname": hostname, "files": entries}
    (drive / "openstack/latest/meta_data.json").write_text(json.dumps(meta))
    return drive


def make_net(tmp_path: Path) -> Path:
    net = tmp_path / "net"
    for name, mac, physical in (("lo", "00:00:00:00:00:00", False),
                                ("ens3", "52:54:00:12:34:56", True),
                                ("ens4", "52:54:00:ab:cd:ef", True),
                                ("veth0", "0a:00:00:00:00:01", False)):
        (net / name).mkdir(parents=True)
        (net / name / "address").write_text(mac + "\n")
        if physical:
            (net / name / "device").mkdir()
    return net


def run(tmp_path: Path, drive: Path) -> subprocess.CompletedProcess[str]:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), "--config-drive", str(drive),
         "--sys-class-net", str(make_net(tmp_path))], capture_output=True, text=True, timeout=30)


def test_installs_agent_config_and_certs_with_tight_modes(tmp_path: Path) -> None:
    drive = make_drive(tmp_path, {"/etc/octavia/amphora-agent.conf": b"[amphora_agent]\n",
                                  "/etc/octavia/certs/server.pem": b"PEM"})
    done = run(tmp_path, drive)
    assert done.returncode == 0, done.stderr
    root = tmp_path / "root"
    conf = root / "etc/octavia/amphora-agent.conf"
    assert conf.read_bytes() == b"[amphora_agent]\n"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert (root / "etc/octavia/certs/server.pem").stat().st_mode & 0o777 == 0o600
    assert "installed /etc/octavia/certs/server.pem" in done.stderr


def test_management_network_matches_physical_nics_only(tmp_path: Path) -> None:
    drive = make_drive(tmp_path, {})
    done = run(tmp_path, drive)
    assert done.returncode == 0, done.stderr
    network = (tmp_path / "root/run/systemd/network/10-amphora-mgmt.network").read_text()
    assert "MACAddress=52:54:00:12:34:56 52:54:00:ab:cd:ef\n" in network
    assert "0a:00:00:00:00:01" not in network
    assert "DHCP=yes" in network


def test_refuses_paths_outside_the_agent_dirs(tmp_path: Path) -> None:
    for bad in ("/etc/shadow", "/etc/octavia/../shadow", "relative/path"):
        case = tmp_path / bad.replace("/", "_")
        drive = make_drive(case, {bad: b"x"})
        done = run(case, drive)
        assert done.returncode == 1, bad
        assert "error:" in done.stderr
        # no file of the drive was installed anywhere under this run's root
        installed = [p for p in (case / "root").rglob("*") if p.is_file()]
        assert [p for p in installed if p.read_bytes() == b"x"] == [], bad
        assert not (case / "root/etc").exists(), bad


def test_refuses_content_outside_the_drive(tmp_path: Path) -> None:
    drive = make_drive(tmp_path, {"/etc/octavia/a.conf": b"x"})
    meta_path = drive / "openstack/latest/meta_data.json"
    meta = json.loads(meta_path.read_text())
    meta["files"][0]["content_path"] = "/../../../etc/passwd"
    meta_path.write_text(json.dumps(meta))
    done = run(tmp_path, drive)
    assert done.returncode == 1
    assert "bad content_path" in done.stderr


def test_a_drive_without_metadata_is_an_error(tmp_path: Path) -> None:
    drive = tmp_path / "empty"
    drive.mkdir()
    done = run(tmp_path, drive)
    assert done.returncode == 1
    assert "meta_data.json" in done.stderr
