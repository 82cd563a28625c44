"""Validation of a rotated server certificate before it replaces the old one.

Kept apart from :mod:`amphora_agent.tls` because it needs ``cryptography``,
which the agent imports only when a rotation arrives (see that module).
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from amphora_agent.errors import InvalidRequest
from amphora_agent.tls import build_server_context, failure_reason


def _public_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# What every TLS client of the management network will accept from a server:
# the curves TLS defines ECDSA signature schemes for, RSA of 2048 bits or more.
# Ed25519/Ed448 are refused: OpenSSL would serve them, but only to clients
# that offer the ed25519/ed448 signature schemes (FIPS-mode OpenSSL and many
# HTTP stacks don't), so such a certificate could lock a controller out.
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
MIN_RSA_BITS = 2048
_SIGNATURE_HASHES = ("sha256", "sha384", "sha512")
MIN_REMAINING_VALIDITY = datetime.timedelta(hours=1)


def _check_key(key: object) -> None:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidRequest(f"certificate: RSA key of {key.key_size} bits; "
                                 f"at least {MIN_RSA_BITS} are required")
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _CURVES:
            raise InvalidRequest(f"certificate: EC curve {key.curve.name} is not one of "
                                 f"{', '.join(_CURVES.values())}")
    else:
        raise InvalidRequest("certificate: key type not accepted; use RSA (>= 2048 bits) "
                             "or EC (P-256, P-384, P-521)")


def _check_signatures(certs: list[x509.Certificate]) -> None:
    for position, cert in enumerate(certs):
        what = "certificate" if position == 0 else f"chain certificate {position}"
        try:
            digest = cert.signature_hash_algorithm
        except UnsupportedAlgorithm:
            raise InvalidRequest(f"certificate: {what} has an unknown signature "
                                 "algorithm") from None
        if digest is None:  # Ed25519/Ed448 signatures carry no separate hash
            continue
        if digest.name not in _SIGNATURE_HASHES:
            raise InvalidRequest(f"certificate: {what} is signed with {digest.name.upper()}; "
                                 f"use one of {', '.join(_SIGNATURE_HASHES)}")


def _dns_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    return {name.lower() for name in san.value.get_values_for_type(x509.DNSName)}


def _installed_names(path: str | None) -> set[str]:
    if not path:
        return set()
    try:
        with open(path, "rb") as handle:
            return _dns_names(x509.load_pem_x509_certificates(handle.read())[0])
    except (OSError, ValueError):
        return set()


def _check_name(leaf: x509.Certificate, amphora_id: str | None,
                installed_cert: str | None) -> None:
    """The controller checks the server certificate's DNS SAN against the
    amphora id (urllib3 2 ignores the CN), so that is what must match."""
    names = _dns_names(leaf)
    if amphora_id:
        if amphora_id.lower() not in names:
            raise InvalidRequest(f"certificate: no DNS subjectAltName names amphora "
                                 f"{amphora_id}")
        return
    installed = _installed_names(installed_cert)
    if installed and not names & installed:
        raise InvalidRequest("certificate: amphora_id is not set and no DNS subjectAltName "
                             "matches the installed certificate's "
                             f"({', '.join(sorted(installed))})")
    if not names:
        raise InvalidRequest("certificate: no DNS subjectAltName")


def _check_usage(leaf: x509.Certificate) -> None:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        if ExtendedKeyUsageOID.SERVER_AUTH not in eku:
            raise InvalidRequest("certificate: extended key usage does not include serverAuth")
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.digital_signature:
        raise InvalidRequest("certificate: key usage lacks digitalSignature, which the "
                             "ECDHE suites need")


def validate_server_pem(data: bytes, *, amphora_id: str | None = None,
                        installed_cert: str | None = None,
                        now: datetime.datetime | None = None) -> x509.Certificate:
    """Everything about a rotated server PEM that decides whether every
    controller will still connect: parsable, key matches and is a kind TLS
    clients use, strong signatures, names this amphora, usable for a TLS
    server, valid now and for at least the next hour. Whether it builds a
    context is checked by the caller with the agent's real settings."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InvalidRequest("certificate: no parsable PEM certificate in body") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidRequest("certificate: no unencrypted PEM private key in body") from None
    leaf = certs[0]
    if _public_bytes(leaf.public_key()) != _public_bytes(key.public_key()):
        raise InvalidRequest("certificate: private key does not match the certificate")
    _check_key(key)
    _check_signatures(certs)
    _check_name(leaf, amphora_id, installed_cert)
    _check_usage(leaf)
    now = now or datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_before_utc > now:
        raise InvalidRequest(
            f"certificate: not valid before {leaf.not_valid_before_utc.isoformat()}")
    if leaf.not_valid_after_utc <= now:
        raise InvalidRequest(
            f"certificate: expired at {leaf.not_valid_after_utc.isoformat()}")
    if leaf.not_valid_after_utc <= now + MIN_REMAINING_VALIDITY:
        raise InvalidRequest(
            f"certificate: expires at {leaf.not_valid_after_utc.isoformat()}, less than "
            f"{MIN_REMAINING_VALIDITY} from now")
    return leaf


def serve_check(cert_pem: str, client_ca: str, min_version: str,
                crl_file: str | None) -> None:
    """Build the real server context from ``cert_pem``; a 400 if it can't."""
    try:
        build_server_context(cert_pem, client_ca, min_version, crl_file)
    except (OSError, ValueError) as exc:
        reason = failure_reason(exc)
        raise InvalidRequest(f"certificate: cannot serve TLS with it ({reason})") from None
