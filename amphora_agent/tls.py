"""The agent's server TLS: the mutual TLS context, reloaded when the cert rotates.

Validating a rotated certificate needs ``cryptography`` (about 16 MiB once
imported), so it lives in :mod:`amphora_agent.certcheck`, imported only when
a rotation arrives.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

_MIN_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
# TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only. TLS 1.3 suites are
# all AEAD and are not affected by set_ciphers().
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
PREVIOUS_SUFFIX = ".prev"

LOG = logging.getLogger(__name__)


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def previous_path(cert_pem: str) -> str:
    """Where the certificate replaced by the last rotation is kept."""
    return cert_pem + PREVIOUS_SUFFIX


def build_server_context(cert_pem: str, client_ca: str, min_version: str = "TLSv1.2",
                         crl_file: str | None = None) -> ssl.SSLContext:
    """Client certificate required, chained to ``client_ca`` and, with
    ``crl_file``, not revoked; TLS 1.2+ with ECDHE+AEAD suites only and no
    renegotiation (OpenSSL 3 already refuses client-initiated renegotiation
    by default; the option makes that independent of the library's defaults)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _MIN_VERSIONS[min_version]
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(TLS12_CIPHERS)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=client_ca)
    if crl_file:
        context.load_verify_locations(cafile=crl_file)
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    context.load_cert_chain(certfile=cert_pem)
    context.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
                        | ssl.OP_NO_RENEGOTIATION)
    return context


class ServerContextCache:
    """One SSLContext per (cert, CA, CRL) file version.

    Gunicorn asks for a context on every accepted connection; building one
    costs milliseconds, so we rebuild only when a file changed. A rotated
    certificate is thus served from the next connection on, in every worker.
    When the installed certificate cannot build a context, the previous one
    (kept by rotation) serves instead, so the controller is never locked out.
    """

    def __init__(self, cert_pem: str, client_ca: str, min_version: str = "TLSv1.2",
                 crl_file: str | None = None) -> None:
        self.cert_pem = cert_pem
        self.client_ca = client_ca
        self.min_version = min_version
        self.crl_file = crl_file or None
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._context: ssl.SSLContext | None = None

    def _paths(self) -> list[str]:
        paths = [self.cert_pem, previous_path(self.cert_pem), self.client_ca]
        return paths + ([self.crl_file] if self.crl_file else [])

    def _build(self) -> ssl.SSLContext:
        try:
            return build_server_context(self.cert_pem, self.client_ca, self.min_version,
                                        self.crl_file)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            previous = previous_path(self.cert_pem)
            if not os.path.exists(previous):
                raise
            try:
                context = build_server_context(previous, self.client_ca, self.min_version,
                                               self.crl_file)
            except (OSError, ValueError):
                raise exc from None
            LOG.error("server certificate %s cannot serve TLS (%s); serving the previous "
                      "certificate %s instead", self.cert_pem, failure_reason(exc), previous)
            return context

    def get(self) -> ssl.SSLContext:
        key = tuple(_stamp(path) for path in self._paths())
        with self._lock:
            if self._context is None or key != self._key:
                self._context = self._build()
                self._key = key
            return self._context

    def gunicorn_hook(self, handshake_timeout: float) -> Callable[[object, object], Any]:
        def ssl_context(_conf: object, _default_factory: object) -> _DeadlineContext:
            return _DeadlineContext(self.get(), handshake_timeout)
        return ssl_context


def failure_reason(exc: BaseException) -> str:
    """A short reason without file contents: the OpenSSL reason code if any."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


class _DeadlineContext:
    """Gunicorn wraps each accepted socket with ``ssl_context().wrap_socket``
    and then handshakes on a blocking socket with no timeout: a client that
    sends half a ClientHello would hold a worker thread forever, and a few of
    them would silence the agent. Setting a timeout before wrapping bounds
    the handshake (and request reads) on every new connection."""

    def __init__(self, context: ssl.SSLContext, timeout: float) -> None:
        self.context = context
        self.timeout = timeout

    def wrap_socket(self, sock: socket.socket, **kwargs: Any) -> ssl.SSLSocket:
        sock.settimeout(self.timeout)
        return self.context.wrap_socket(sock, **kwargs)
