"""Where the controller gets the PEM bundles a TLS listener or pool names.

Listeners and pools name certificates by reference (``default_tls_container_ref``,
``sni_container_refs``, client CA/CRL, pool client cert/CA/CRL), as in Octavia.
A :class:`CertificateSource` resolves a reference to the PEM bundle the agent
stores (``PUT /1.0/loadbalancer/{lb}/certificates/{filename}``, the filename
being ``haproxy_templates.model.cert_filename(ref)``). The embedded default is
:class:`LocalCertificateStore`, a directory of PEM bundles (mode 0600) with
generated ids; a Barbican source implements the same one-method interface
(docs/controller.md).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Protocol

LOCAL_SCHEME = "local://certificates/"
_ID_RE = re.compile(r"[0-9a-f]{32}")
_MAX_BUNDLE = 256 * 1024


class CertificateNotFound(LookupError):
    """A reference names no bundle this source holds."""


class CertificateSource(Protocol):
    def get(self, ref: str) -> bytes:
        """The PEM bundle (certificate, chain, key) ``ref`` names; raises CertificateNotFound."""


class LocalCertificateStore:
    """PEM bundles in one directory (0700), one file per id (0600).

    References look like ``local://certificates/<32 hex>``; anything else is
    refused with a whole-string match before a path is built from it.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, ref: str) -> Path:
        cert_id = ref.removeprefix(LOCAL_SCHEME) if ref.startswith(LOCAL_SCHEME) else ""
        if not _ID_RE.fullmatch(cert_id):
            raise CertificateNotFound(f"not a local certificate reference: {ref[:100]!r}")
        return self.directory / f"{cert_id}.pem"

    def add(self, pem: bytes) -> str:
        """Store a bundle; returns its reference."""
        if not pem.lstrip().startswith(b"-----BEGIN ") or len(pem) > _MAX_BUNDLE:
            raise ValueError("a certificate bundle must be PEM, at most 256 KiB")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        ref = LOCAL_SCHEME + uuid.uuid4().hex
        target = self._path(ref)
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        return ref

    def get(self, ref: str) -> bytes:
        try:
            return self._path(ref).read_bytes()
        except FileNotFoundError:
            raise CertificateNotFound(f"no certificate {ref[:100]!r} in the local store") from None

    def delete(self, ref: str) -> None:
        self._path(ref).unlink(missing_ok=True)


def lb_certificate_refs(listener_options: list[dict[str, object]],
                        pool_options: list[dict[str, object]]) -> list[str]:
    """Every certificate reference of an LB's live listeners and pools, each once."""
    refs: list[str] = []
    for options in listener_options:
        sni = options.get("sni_container_refs")
        for value in (options.get("default_tls_container_ref"),
                      *(sni if isinstance(sni, list) else ()),
                      options.get("client_ca_tls_container_ref"),
                      options.get("client_crl_container_ref")):
            if isinstance(value, str):
                refs.append(value)
    for options in pool_options:
        for key in ("tls_container_ref", "ca_tls_container_ref", "crl_container_ref"):
            if isinstance(options.get(key), str):
                refs.append(str(options[key]))
    return list(dict.fromkeys(refs))
