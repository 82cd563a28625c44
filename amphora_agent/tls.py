"""The agent's server TLS: mutual TLS context, reloaded when the cert rotates,
and validation of a rotated certificate before it replaces the old one."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from amphora_agent.errors import InvalidRequest

_MIN_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def _stamp(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def build_server_context(cert_pem: str, client_ca: str,
                         min_version: str = "TLSv1.2") -> ssl.SSLContext:
    """Client certificate required, chained to ``client_ca``; TLS 1.2+ only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _MIN_VERSIONS[min_version]
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=client_ca)
    context.load_cert_chain(certfile=cert_pem)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


class ServerContextCache:
    """One SSLContext per (cert, CA) file version.

    Gunicorn asks for a context on every accepted connection; building one
    costs milliseconds, so we rebuild only when a file changed. A rotated
    certificate is thus served from the next connection on, in every worker.
    """

    def __init__(self, cert_pem: str, client_ca: str, min_version: str = "TLSv1.2") -> None:
        self.cert_pem = cert_pem
        self.client_ca = client_ca
        self.min_version = min_version
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._context: ssl.SSLContext | None = None

    def get(self) -> ssl.SSLContext:
        key = (_stamp(self.cert_pem), _stamp(self.client_ca))
        with self._lock:
            if self._context is None or key != self._key:
                self._context = build_server_context(
                    self.cert_pem, self.client_ca, self.min_version)
                self._key = key
            return self._context

    def gunicorn_hook(self, handshake_timeout: float) -> Callable[[object, object], Any]:
        def ssl_context(_conf: object, _default_factory: object) -> _DeadlineContext:
            return _DeadlineContext(self.get(), handshake_timeout)
        return ssl_context


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


def _public_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def validate_server_pem(data: bytes, *, now: datetime.datetime | None = None) -> x509.Certificate:
    """A rotated server PEM must parse, its key must match, and it must be valid now."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InvalidRequest("certificate: no parsable PEM certificate in body") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InvalidRequest("certificate: no unencrypted PEM private key in body") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
                      | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise InvalidRequest("certificate: unsupported private key type")
    leaf = certs[0]
    if _public_bytes(leaf.public_key()) != _public_bytes(key.public_key()):
        raise InvalidRequest("certificate: private key does not match the certificate")
    now = now or datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_after_utc <= now:
        raise InvalidRequest(
            f"certificate: expired at {leaf.not_valid_after_utc.isoformat()}")
    if leaf.not_valid_before_utc > now:
        raise InvalidRequest(
            f"certificate: not valid before {leaf.not_valid_before_utc.isoformat()}")
    return leaf
