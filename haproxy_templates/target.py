"""The machine a config is rendered for: versions and sizing facts.

The controller fills a Target from the amphora's ``/1.0/details`` or from image
metadata; tests and the CLI use :meth:`Target.detect` on the local machine.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from haproxy_templates.capabilities import Versions
from haproxy_templates.versions import Version

_SERVICES_RE = re.compile(r"^Available services\s*:\s*(.*)$", re.MULTILINE)
_FEATURES_RE = re.compile(r"^Feature list\s*:\s*(.*)$", re.MULTILINE)


def build_features(vv: str) -> frozenset[str]:
    """The enabled (``+``) flags of ``haproxy -vv``'s feature list."""
    match = _FEATURES_RE.search(vv)
    words = match.group(1).split() if match else []
    return frozenset(w[1:] for w in words if w.startswith("+"))


def services_of(vv: str) -> frozenset[str]:
    """The built-in services ``haproxy -vv`` lists (``prometheus-exporter``)."""
    match = _SERVICES_RE.search(vv)
    return frozenset(match.group(1).split()) if match else frozenset()


@dataclass(frozen=True)
class Target:
    """Facts about the amphora; everything but the HAProxy version has a default.

    Defaults describe the smallest supported amphora flavor (1 vCPU, 1 GiB).
    """

    haproxy_version: str
    openssl_version: str = "3.0.0"
    cpu_count: int = 1
    memory_kb: int = 1024 * 1024
    fd_limit: int = 1024 * 1024
    # Leave CPU 0 to the kernel and the agent (amphora tuned for it).
    reserve_cpu0: bool = False
    # HAProxy's built-in services (``haproxy -vv``); None when unknown.
    services: frozenset[str] | None = None
    # ``+FLAG`` entries of ``haproxy -vv``'s feature list (QUIC, PROMEX, ...); None: unknown.
    build: frozenset[str] | None = None
    keepalived_version: str | None = None
    haproxy: Version = field(init=False, repr=False, compare=False)
    openssl: Version = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "haproxy", Version.parse(self.haproxy_version))
        object.__setattr__(self, "openssl", Version.parse(self.openssl_version))
        if self.cpu_count < 1 or self.memory_kb < 1 or self.fd_limit < 1:
            raise ValueError("cpu_count, memory_kb and fd_limit must be positive")

    @property
    def versions(self) -> Versions:
        return Versions(self.haproxy, self.openssl, self.services, self.build)

    @classmethod
    def detect(cls, haproxy_cmd: str = "haproxy", openssl_cmd: str = "openssl",
               prefix: Sequence[str] = ()) -> Target:
        """Describe this machine (runs ``haproxy -vv`` and ``openssl version``).

        ``prefix`` runs both elsewhere, e.g. ``("chroot", root)`` for an image's root.
        """
        vv = subprocess.run([*prefix, haproxy_cmd, "-vv"], capture_output=True, text=True,
                            check=True, timeout=30).stdout
        haproxy_version = vv.splitlines()[0] if vv else ""
        openssl = subprocess.run([*prefix, openssl_cmd, "version"], capture_output=True,
                                 text=True, check=True, timeout=30).stdout.strip()
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return cls(
            haproxy_version=str(Version.parse(haproxy_version)),
            openssl_version=str(Version.parse(openssl)),
            cpu_count=os.cpu_count() or 1,
            memory_kb=_mem_total_kb(),
            fd_limit=soft if soft != resource.RLIM_INFINITY else 1024 * 1024,
            services=services_of(vv),
            build=build_features(vv),
        )


def _mem_total_kb(path: str = "/proc/meminfo") -> int:
    with open(path, encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    raise RuntimeError(f"no MemTotal in {path}")
