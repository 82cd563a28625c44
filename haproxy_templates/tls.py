"""Operator TLS policy and validation of ciphers, suites, versions and ALPN.

What a cipher string *means* is OpenSSL's business, so we ask the OpenSSL
binary (``openssl ciphers -v``; argument lists, results cached) instead of
keeping our own list that would drift from the amphora's library. The
deny-list is expanded the same way, so an alias (``HIGH`` pulls in ``ADH-*``,
which ``aNULL`` names) is caught as well as a literal name.

TLS 1.2-and-older ciphers (``ciphers``) and TLS 1.3 suites (``ciphersuites``)
are different OpenSSL settings with different syntax; mixing them up silently
does nothing in HAProxy, so it is an error here.
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from haproxy_templates.errors import ValidationError

# Octavia API names, oldest first; HAProxy spells TLSv1 as TLSv1.0.
TLS_VERSIONS: tuple[str, ...] = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
HAPROXY_VERSION_NAMES = {"SSLv3": "SSLv3", "TLSv1": "TLSv1.0", "TLSv1.1": "TLSv1.1",
                         "TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}
# h3 is HTTP/3 over QUIC: listeners only, on a quic bind line of its own.
ALPN_PROTOCOLS: tuple[str, ...] = ("h3", "h2", "http/1.1", "http/1.0")

_CIPHER_TOKEN_RE = re.compile(r"^[!+-]?[A-Za-z0-9_.+-]+$")
_SPECIAL_TOKEN_RE = re.compile(r"^@(STRENGTH|SECLEVEL=[0-5])$")
_SUITE_RE = re.compile(r"^TLS_[A-Z0-9_]+$")


@dataclass(frozen=True)
class TLSPolicy:
    """Operator defaults and limits. Defaults follow today's common
    "intermediate" guidance: ECDHE/DHE with AEAD ciphers, TLS 1.2 and 1.3."""

    listener_ciphers: str = (
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
    )
    listener_ciphersuites: str = (
        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
    )
    listener_versions: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    listener_alpn: tuple[str, ...] = ("h2", "http/1.1", "http/1.0")
    pool_ciphers: str = listener_ciphers
    pool_ciphersuites: str = listener_ciphersuites
    pool_versions: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    pool_alpn: tuple[str, ...] = ("http/1.1", "http/1.0")
    minimum_version: str = "TLSv1.2"
    # OpenSSL cipher strings; each is expanded, so aliases are caught.
    denied_ciphers: tuple[str, ...] = (
        "aNULL", "eNULL", "EXPORT", "LOW", "RC4", "DES", "3DES", "MD5", "PSK", "SRP",
        "SEED", "IDEA", "kRSA",
    )
    denied_ciphersuites: tuple[str, ...] = ("TLS_AES_128_CCM_8_SHA256",)
    openssl_cmd: str = "openssl"

    def openssl(self) -> OpenSSL:
        return OpenSSL.for_command(self.openssl_cmd)


@dataclass(frozen=True)
class CipherInfo:
    name: str
    protocol: str  # as OpenSSL prints it: SSLv3, TLSv1, TLSv1.2, TLSv1.3


class OpenSSL:
    """Answers from one OpenSSL binary, cached per process (they never change)."""

    _instances: dict[str, OpenSSL] = {}

    def __init__(self, command: str) -> None:
        self.command = command

    @classmethod
    def for_command(cls, command: str) -> OpenSSL:
        if command not in cls._instances:
            cls._instances[command] = cls(command)
        return cls._instances[command]

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - instances live as long as the process
    def expand(self, cipher_string: str) -> tuple[CipherInfo, ...]:
        """TLS <= 1.2 ciphers ``cipher_string`` selects; () when it matches nothing."""
        if cipher_string.startswith("-"):
            return ()
        return self._run(["ciphers", "-v", "-ciphersuites", "", cipher_string])

    @functools.lru_cache(maxsize=256)  # noqa: B019
    def suite(self, name: str) -> CipherInfo | None:
        """The TLS 1.3 suite called ``name``, or None if this OpenSSL has none such."""
        if not _SUITE_RE.fullmatch(name):
            return None
        for info in self._run(["ciphers", "-v", "-ciphersuites", name]):
            if info.name == name and info.protocol == "TLSv1.3":
                return info
        return None

    def _run(self, args: list[str]) -> tuple[CipherInfo, ...]:
        proc = subprocess.run([self.command, *args], capture_output=True, text=True,
                              timeout=30, check=False)
        if proc.returncode != 0:
            return ()
        out = []
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                out.append(CipherInfo(parts[0], parts[1]))
        return tuple(out)


def _tokens(cipher_string: str) -> list[str]:
    return [t for t in re.split(r"[:, ]+", cipher_string.strip()) if t]


def check_ciphers(value: str, policy: TLSPolicy, field: str) -> str:
    """Validate a TLS <= 1.2 cipher string; return it normalised to ``:`` separators."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty OpenSSL cipher string")
    ossl = policy.openssl()
    tokens = _tokens(value)
    if not tokens:  # only separators, e.g. ":"
        raise ValidationError(field, "must be a non-empty OpenSSL cipher string")
    denied_lower = {d.lower(): d for d in policy.denied_ciphers}
    for token in tokens:
        if _SPECIAL_TOKEN_RE.fullmatch(token):
            continue
        if not _CIPHER_TOKEN_RE.fullmatch(token):
            raise ValidationError(field, f"invalid cipher token {token!r}")
        if token[0] in "!-":
            continue  # removals may name what this OpenSSL does not even have
        for part in token.lstrip("+").split("+"):
            if part.lower() in denied_lower:
                raise ValidationError(field, f"{part} is denied by the operator's TLS policy")
            if _SUITE_RE.fullmatch(part) and ossl.suite(part):
                raise ValidationError(
                    field, f"{part} is a TLS 1.3 ciphersuite; set it in the ciphersuites "
                    "field, not with TLS 1.2-and-older ciphers")
            if not ossl.expand(part):
                raise ValidationError(field, f"{part} is not a cipher known to OpenSSL")
    if tokens[0].startswith("-"):
        raise ValidationError(field, "must not start with a removal")
    normalised = ":".join(tokens)
    selected = ossl.expand(normalised)
    if not selected:
        raise ValidationError(field, "selects no cipher")
    denied = _denied_names(policy)
    for info in selected:
        if info.name in denied:
            raise ValidationError(
                field, f"selects {info.name}, denied by the operator's TLS policy "
                f"({denied[info.name]}); add !{denied[info.name]}")
    return normalised


def _denied_names(policy: TLSPolicy) -> dict[str, str]:
    return _denied_names_cached(policy.openssl_cmd, policy.denied_ciphers)


@functools.lru_cache(maxsize=64)
def _denied_names_cached(command: str, entries: tuple[str, ...]) -> dict[str, str]:
    ossl = OpenSSL.for_command(command)
    names: dict[str, str] = {}
    for entry in entries:
        for info in ossl.expand(entry):
            names.setdefault(info.name, entry)
    return names


def check_ciphersuites(value: str, policy: TLSPolicy, field: str) -> str:
    """Validate a TLS 1.3 ciphersuite list (exact names, no aliases)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty list of TLS 1.3 ciphersuites")
    ossl = policy.openssl()
    tokens = _tokens(value)
    if not tokens:  # only separators, e.g. ":"
        raise ValidationError(field, "must be a non-empty list of TLS 1.3 ciphersuites")
    seen: set[str] = set()
    for token in tokens:
        if not _CIPHER_TOKEN_RE.fullmatch(token):
            raise ValidationError(field, f"invalid ciphersuite token {token!r}")
        if token in policy.denied_ciphersuites:
            raise ValidationError(field, f"{token} is denied by the operator's TLS policy")
        if ossl.suite(token) is None:
            if ossl.expand(token.lstrip("!+-")):
                raise ValidationError(
                    field, f"{token} is a TLS 1.2-and-older cipher or alias; set it in the "
                    "ciphers field (ciphersuites takes exact TLS 1.3 suite names)")
            raise ValidationError(field, f"{token} is not a TLS 1.3 ciphersuite known to OpenSSL")
        if token in seen:
            raise ValidationError(field, f"{token} is listed twice")
        seen.add(token)
    return ":".join(tokens)


def check_versions(versions: Sequence[str], policy: TLSPolicy, field: str) -> tuple[str, str]:
    """Validate a protocol version list; return HAProxy's (ssl-min-ver, ssl-max-ver)."""
    if isinstance(versions, str) or not versions:
        raise ValidationError(field, "must be a non-empty list of TLS versions")
    indexes = []
    for i, version in enumerate(versions):
        if version not in TLS_VERSIONS:
            raise ValidationError(f"{field}[{i}]", f"unknown TLS version {version!r}; "
                                  f"expected one of {', '.join(TLS_VERSIONS)}")
        indexes.append(TLS_VERSIONS.index(version))
    if len(set(indexes)) != len(indexes):
        raise ValidationError(field, "lists a version twice")
    ordered = sorted(indexes)
    if ordered[-1] - ordered[0] + 1 != len(ordered):
        gap = [TLS_VERSIONS[i] for i in range(ordered[0], ordered[-1]) if i not in ordered]
        raise ValidationError(field, f"versions must be contiguous; missing {', '.join(gap)}")
    minimum = TLS_VERSIONS.index(policy.minimum_version)
    if ordered[0] < minimum:
        raise ValidationError(field, f"{TLS_VERSIONS[ordered[0]]} is below the operator's "
                              f"minimum {policy.minimum_version}")
    return (HAPROXY_VERSION_NAMES[TLS_VERSIONS[ordered[0]]],
            HAPROXY_VERSION_NAMES[TLS_VERSIONS[ordered[-1]]])


def check_alpn(protocols: Sequence[str], field: str) -> tuple[str, ...]:
    if isinstance(protocols, str) or not protocols:
        raise ValidationError(field, "must be a non-empty list of ALPN protocol names")
    for i, proto in enumerate(protocols):
        if proto not in ALPN_PROTOCOLS:
            raise ValidationError(f"{field}[{i}]", f"unknown ALPN protocol {proto!r}; "
                                  f"expected one of {', '.join(ALPN_PROTOCOLS)}")
    if len(set(protocols)) != len(protocols):
        raise ValidationError(field, "lists a protocol twice")
    return tuple(protocols)
