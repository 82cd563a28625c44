"""Facts about the amphora for ``/info`` and ``/details``.

Package versions come from dpkg (what the controller's capability checks key
on) and are cached until dpkg's status file changes, so ``/info`` costs no
subprocess on the hot path. An agent configured to run another HAProxy than
the packaged one (``haproxy_cmd``: a source build, a newer release beside the
image's) reports that binary's own version instead: the controller renders
for what actually runs.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import resource
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass

DPKG_STATUS = "/var/lib/dpkg/status"
PACKAGED_HAPROXY = "/usr/sbin/haproxy"
PACKAGES = ("haproxy", "keepalived", "ipvsadm")
_VERSION_RE = re.compile(r"version v?(\d+(?:\.\d+)+\S*)", re.IGNORECASE)
# The agent's own distribution in an image; the whole project in a development tree.
_DISTRIBUTIONS = ("amphora-agent", "amphora")


@dataclass
class _VersionCache:
    stamp: tuple[object, ...] | None = None
    versions: dict[str, str | None] | None = None


_cache = _VersionCache()
_cache_lock = threading.Lock()


def _file_stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _is_packaged(haproxy_cmd: str) -> bool:
    """Resolved once per path: ``haproxy_cmd`` is fixed for the agent's life,
    and ``/info`` stays free of path walks."""
    return os.path.realpath(haproxy_cmd) == os.path.realpath(PACKAGED_HAPROXY)


def _dpkg_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    found: dict[str, str | None] = dict.fromkeys(names)
    if shutil.which("dpkg-query") is None:
        return found
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Version}\n", *names],
        capture_output=True, text=True, check=False, timeout=10)
    for line in proc.stdout.splitlines():
        name, status, version = ([*line.split("\t"), "", "", ""])[:3]
        if name in found and status.endswith(" installed") and version:
            found[name] = version
    return found


def _binary_version(cmd: list[str]) -> str | None:
    """Fallback where no dpkg knows the package (e.g. a source build)."""
    if shutil.which(cmd[0]) is None and not os.path.exists(cmd[0]):
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return None
    match = _VERSION_RE.search(proc.stdout + proc.stderr)
    return match.group(1) if match else None


def package_versions(haproxy_cmd: str = PACKAGED_HAPROXY) -> dict[str, str | None]:
    """``{haproxy, keepalived, ipvsadm}`` → distro package version or None.

    ``haproxy`` is the version of ``haproxy_cmd``: the package's while that is
    the packaged binary, else the binary's own ``-v`` (cached until dpkg's
    status or that file changes).
    """
    packaged = _is_packaged(haproxy_cmd)
    stamp = (_file_stamp(DPKG_STATUS), haproxy_cmd,
             None if packaged else _file_stamp(haproxy_cmd))
    with _cache_lock:
        if _cache.versions is not None and _cache.stamp == stamp:
            return dict(_cache.versions)
        versions = _dpkg_versions(PACKAGES)
        if not packaged:
            versions["haproxy"] = None  # the package's version is not this binary's
        fallbacks = {"haproxy": [haproxy_cmd, "-v"], "keepalived": ["keepalived", "-v"],
                     "ipvsadm": ["ipvsadm", "--version"]}
        for name, cmd in fallbacks.items():
            if versions.get(name) is None:
                versions[name] = _binary_version(cmd)
        _cache.stamp, _cache.versions = stamp, versions
        return dict(versions)


def hostname() -> str:
    return socket.gethostname()


def cpu_times() -> dict[str, int]:
    """Jiffies from /proc/stat's first line, as Octavia reports them."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    values = dict(zip(names, fields, strict=False))
    return {"total": sum(fields), "user": values.get("user", 0),
            "system": values.get("system", 0), "soft_irq": values.get("softirq", 0)}


def memory_kb() -> dict[str, int]:
    info: dict[str, int] = {}
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0])
    return {
        "total": info.get("MemTotal", 0),
        "free": info.get("MemFree", 0),
        "available": info.get("MemAvailable", 0),
        "buffers": info.get("Buffers", 0),
        "cached": info.get("Cached", 0),
        "swap_used": info.get("SwapTotal", 0) - info.get("SwapFree", 0),
        "shared": info.get("Shmem", 0),
        "slab": info.get("Slab", 0),
    }


def disk_bytes(path: str) -> dict[str, int]:
    probe = path
    while not os.path.exists(probe) and probe != "/":
        probe = os.path.dirname(probe)
    st = os.statvfs(probe)
    return {"used": (st.f_blocks - st.f_bfree) * st.f_frsize,
            "available": st.f_bavail * st.f_frsize}


def load_average() -> list[str]:
    with open("/proc/loadavg", encoding="ascii") as handle:
        return handle.read().split()[:3]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - Linux always has it
        return os.cpu_count() or 1


def open_file_limit() -> dict[str, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with open("/proc/sys/fs/nr_open", encoding="ascii") as handle:
        nr_open = int(handle.read())
    return {"soft": soft, "hard": hard, "nr_open": nr_open}


def active_tuned_profiles() -> str:
    try:
        with open("/etc/tuned/active_profile", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


@functools.cache
def agent_version() -> str | None:
    """This agent's release (the installed distribution), which the controller
    reads from ``/1.0/info`` to know what the agent supports."""
    for name in _DISTRIBUTIONS:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
