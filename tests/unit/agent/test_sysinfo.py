from __future__ import annotations

import subprocess

from amphora_agent import facts, sysinfo


def _dpkg(name: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True,
                          text=True, check=True).stdout


def test_info_reports_installed_package_versions() -> None:
    info = facts.info()
    assert info["haproxy_version"] == _dpkg("haproxy")
    assert info["keepalived_version"] == _dpkg("keepalived")
    # the controller takes the first two dotted fields of haproxy_version
    major_minor = ".".join(info["haproxy_version"].split(".")[:2])
    haproxy_v = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout
    assert f"version {major_minor}." in haproxy_v
    assert info["api_version"] == "1.0"


def test_memory_is_in_kb_and_matches_proc() -> None:
    with open("/proc/meminfo") as handle:
        total = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
    assert sysinfo.memory_kb()["total"] == total


def test_cpu_total_is_the_sum_of_jiffies() -> None:
    cpu = sysinfo.cpu_times()
    assert cpu["total"] >= cpu["user"] + cpu["system"] + cpu["soft_irq"]


def test_version_cache_follows_dpkg_status(tmp_path, monkeypatch) -> None:
    status = tmp_path / "status"
    status.write_text("a")
    monkeypatch.setattr(sysinfo, "DPKG_STATUS", str(status))
    calls = []
    real = sysinfo._dpkg_versions
    monkeypatch.setattr(sysinfo, "_dpkg_versions", lambda names: calls.append(1) or real(names))
    sysinfo.package_versions()
    sysinfo.package_versions()
    assert len(calls) == 1
    status.write_text("changed, longer")
    sysinfo.package_versions()
    assert len(calls) == 2
