"""What a given HAProxy / OpenSSL can do: one table keyed by version.

The renderer asks this table before emitting a keyword; the controller asks it
before booting anything, from an image's metadata (``haproxy_version`` such as
``2.6.12-1+deb12u4``, ``haproxy_build_features`` from ``haproxy -vv``).
Versions come from HAProxy's changelog and manual: the first release branch
that shipped the keyword, checked against the real binaries the images carry
(Debian 12: HAProxy 2.6 with OpenSSL 3.0; Debian 13: 3.0 with OpenSSL 3.5;
Debian's next release, built from source: 3.2) by
``tests/integration/image/test_image_capabilities.py``.

Some features are a project policy rather than a keyword's first release:
HTTP/2 is offered only where HAProxy counts and caps protocol glitches per
connection (``tune.h2.fe/be.glitches-threshold``, HAProxy 3.0), its defence
against the HTTP/2 abuse patterns (rapid reset, CONTINUATION and PING floods)
published since 2023.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from haproxy_templates.errors import CapabilityError
from haproxy_templates.versions import Version


@dataclass(frozen=True)
class Feature:
    """One capability: which component must be at least which version."""

    name: str
    description: str
    haproxy: Version | None = None
    openssl: Version | None = None
    # Some features are build options: the target's ``haproxy -vv`` must list this service.
    service: str | None = None
    note: str = ""
    # ... or this flag of its "Feature list" (``+QUIC``: built with USE_QUIC).
    build: str | None = None


def _f(name: str, description: str, haproxy: str | None = None, openssl: str | None = None,
       service: str | None = None, note: str = "", build: str | None = None) -> Feature:
    return Feature(
        name,
        description,
        Version.parse(haproxy) if haproxy else None,
        Version.parse(openssl) if openssl else None,
        service,
        note,
        build,
    )


FEATURES: Mapping[str, Feature] = MappingProxyType({
    f.name: f
    for f in (
        # The baseline this renderer always emits: master-worker, threads, TLS
        # version bounds, seamless reload fd passing, hard-stop-after.
        _f("baseline", "master-worker, nbthread, ssl-min-ver/ssl-max-ver, expose-fd, "
           "hard-stop-after", haproxy="1.8"),
        _f("http2_frontend", "HTTP/2 towards clients (ALPN h2 on bind lines)", haproxy="3.0",
           note="since 1.8; offered with tune.h2.fe.glitches-threshold, new in 3.0"),
        _f("http2_backend", "HTTP/2 towards members (ALPN h2 on server lines)", haproxy="3.0",
           note="since 1.9; offered with tune.h2.be.glitches-threshold, new in 3.0"),
        _f("tls13", "TLS 1.3", openssl="1.1.1"),
        _f("tls13_ciphersuites", "TLS 1.3 ciphersuites (ciphersuites keyword)",
           haproxy="1.9", openssl="1.1.1"),
        _f("prometheus_exporter", "the prometheus-exporter service", haproxy="2.0",
           service="prometheus-exporter",
           note="contrib build before 2.4, USE_PROMEX build option since 2.4"),
        _f("http_check_send", "http-check send (method, URI, version and Host of HTTP checks)",
           haproxy="2.2"),
        _f("insecure_fork_wanted", "insecure-fork-wanted (required by external checks)",
           haproxy="2.2"),
        _f("localpeer", "the localpeer global keyword", haproxy="2.2"),
        _f("dynamic_servers", "dynamic servers (add server / del server on the runtime API)",
           haproxy="2.4", note="behind experimental-mode until 2.6"),
        _f("idle_close_on_response", "option idle-close-on-response", haproxy="2.6"),
        _f("ocsp_update", "OCSP auto-update of listener certificates (ocsp-update.mode)",
           haproxy="3.0", note="2.8 has it per crt-list entry only, which is not rendered"),
        _f("quic_listener", "QUIC/HTTP/3 listeners (ALPN h3)", haproxy="2.8", build="QUIC",
           note="experimental in 2.6; needs the USE_QUIC build option"),
        _f("quic_native_tls", "QUIC on OpenSSL's own QUIC API (no limited-quic layer)",
           haproxy="3.2", openssl="3.5", build="QUIC",
           note="older pairs need the limited-quic compatibility layer (no 0-RTT)"),
        _f("shm_stats_file", "shm-stats-file (counters survive reloads)", haproxy="3.3",
           note="an experimental directive in 3.3"),
    )
})


@dataclass(frozen=True)
class Versions:
    """The minimum a capability check needs: component versions and built-in services."""

    haproxy: Version
    openssl: Version
    services: frozenset[str] | None = None  # None: unknown, assume a full build
    # ``+FLAG`` entries of ``haproxy -vv``'s feature list; None: unknown, assume none
    # of the optional ones (QUIC is off in most builds).
    build: frozenset[str] | None = None

    @classmethod
    def of(cls, haproxy: str | Version, openssl: str | Version = "3.0.0",
           services: frozenset[str] | None = None,
           build: frozenset[str] | None = None) -> Versions:
        return cls(Version.parse(haproxy), Version.parse(openssl), services, build)


def missing(versions: Versions, name: str) -> str | None:
    """Why ``name`` is unavailable on ``versions`` (None when it is available)."""
    feature = FEATURES[name]
    if feature.haproxy is not None and versions.haproxy < feature.haproxy:
        return (f"{feature.description} needs HAProxy >= {feature.haproxy.short}, "
                f"target has {versions.haproxy}")
    if feature.openssl is not None and versions.openssl < feature.openssl:
        return (f"{feature.description} needs OpenSSL >= {feature.openssl}, "
                f"target has {versions.openssl}")
    if (feature.service is not None and versions.services is not None
            and feature.service not in versions.services):
        return f"{feature.description} needs HAProxy built with the {feature.service} service"
    if feature.build is not None and feature.build not in (versions.build or ()):
        built = "without it" if versions.build is not None else "with unknown build options"
        return (f"{feature.description} needs HAProxy built with {feature.build} "
                f"(USE_{feature.build}); target {versions.haproxy} is built {built}")
    return None


def supports(versions: Versions, name: str) -> bool:
    return missing(versions, name) is None


def require(versions: Versions, name: str, field: str) -> None:
    """Raise CapabilityError naming ``field`` and the version needed."""
    reason = missing(versions, name)
    if reason is not None:
        raise CapabilityError(field, reason)


def capability_map(haproxy_version: str, openssl_version: str = "3.0.0",
                   services: frozenset[str] | None = None,
                   build: frozenset[str] | None = None) -> dict[str, bool]:
    """Every feature for an image's metadata, e.g. to store as Glance properties."""
    versions = Versions.of(haproxy_version, openssl_version, services, build)
    return {name: supports(versions, name) for name in sorted(FEATURES)}
