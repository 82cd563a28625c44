from __future__ import annotations

import subprocess
from types import SimpleNamespace

from amphora_agent import facts, sysinfo


def _dpkg(name: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True,
                          text=True, check=True).stdout


def _agent(haproxy_cmd: str) -> SimpleNamespace:
    """What ``facts.info`` reads of the agent: its configured HAProxy."""
    return SimpleNamespace(config=SimpleNamespace(haproxy_cmd=haproxy_cmd))


def test_info_reports_installed_package_versions() -> None:
    info = facts.info(_agent(sysinfo.PACKAGED_HAPROXY))
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


def _proc_stat_cpu() -> list[int]:
    with open("/proc/stat") as handle:
        return [int(v) for v in handle.readline().split()[1:]]


def test_cpu_total_is_the_sum_of_jiffies() -> None:
    # Jiffies only grow, so each value the agent reads lies between two reads of
    # /proc/stat taken around it. Octavia's total is the sum of every field of
    # the "cpu" line (user nice system idle iowait irq softirq steal guest ...).
    before = _proc_stat_cpu()
    cpu = sysinfo.cpu_times()
    after = _proc_stat_cpu()
    assert sum(before) <= cpu["total"] <= sum(after)
    for name, index in (("user", 0), ("system", 2), ("soft_irq", 6)):
        assert before[index] <= cpu[name] <= after[index], name


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


def _fake_haproxy(path, version: str) -> None:
    path.write_text(f"#!/bin/sh\necho 'HAProxy version {version} 2025/11/10 - https://haproxy.org/'\n")
    path.chmod(0o755)


def test_a_haproxy_other_than_the_package_reports_its_own_version(tmp_path) -> None:
    # a source build or a newer release beside the image's: the controller
    # must render for the binary that runs, not for the package
    binary = tmp_path / "haproxy"
    _fake_haproxy(binary, "3.2.26-1")
    assert facts.info(_agent(str(binary)))["haproxy_version"] == "3.2.26-1"
    # replaced in place (an upgrade of the custom build): read again
    _fake_haproxy(binary, "3.2.27-10")
    assert sysinfo.package_versions(str(binary))["haproxy"] == "3.2.27-10"
    # the other packages still come from dpkg
    assert sysinfo.package_versions(str(binary))["keepalived"] == _dpkg("keepalived")


def test_a_link_to_the_packaged_haproxy_reports_the_package(tmp_path) -> None:
    link = tmp_path / "haproxy"
    link.symlink_to(sysinfo.PACKAGED_HAPROXY)
    assert sysinfo.package_versions(str(link))["haproxy"] == _dpkg("haproxy")
