"""Client identity pinning: a certificate from the right CA is not enough
when the operator lists which controller identities may drive this amphora
(an amphora's own certificate chains to a CA too)."""

from __future__ import annotations

from typing import Any


def peer_identities(peercert: dict[str, Any] | None) -> set[str]:
    """CN and subjectAltName values of a certificate as ``ssl`` decodes it."""
    if not peercert:
        return set()
    names: set[str] = set()
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.add(value)
    for _kind, value in peercert.get("subjectAltName", ()):
        names.add(value)
    return names


def is_allowed(peercert: dict[str, Any] | None, allowed: tuple[str, ...]) -> bool:
    if not allowed:
        return True
    return bool(peer_identities(peercert) & set(allowed))
