"""The controller's small PKI: a CA, amphora server certificates whose DNS
SAN is the amphora id (Octavia's controller checks exactly that), and client
certificates for controllers.

EC P-256 keys by default: the handshake is several times cheaper than RSA
2048, which is most of the cost of a fresh mTLS connection to the agent.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# Key kinds: "ec" (P-256) and "rsa" (2048) are what the PKI issues; the others
# exist so tests can offer an agent the keys it must refuse.
_CURVES = {"ec": ec.SECP256R1, "p384": ec.SECP384R1, "p192": ec.SECP192R1}
_RSA_BITS = {"rsa": 2048, "rsa1024": 1024}


def new_key(kind: str = "ec") -> PrivateKey:
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind]())
    if kind in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[kind])
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r} "
                     f"({', '.join([*_CURVES, *_RSA_BITS, 'ed25519'])})")


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(target: Path, data: bytes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(target, 0o600)
    return target


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Issued:
    """A certificate and its key; ``pem`` is the combined form the agent loads."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    @property
    def pem(self) -> bytes:
        return self.cert_pem + self.key_pem

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write cert+key as one PEM, mode 0600."""
        return _write_private(Path(path), self.pem)


@dataclass
class CertificateAuthority:
    cert: x509.Certificate
    key: PrivateKey

    @classmethod
    def create(cls, common_name: str = "Amphora CA", *, days: int = 3650,
               key_kind: str = "ec") -> CertificateAuthority:
        key = new_key(key_kind)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    @classmethod
    def load(cls, cert_path: str | os.PathLike[str],
             key_path: str | os.PathLike[str]) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("CA key must be EC or RSA")
        return cls(cert=cert, key=key)

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    def write(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``ca.pem`` (0644) and ``ca.key`` (0600) into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = out / "ca.pem", out / "ca.key"
        cert_path.write_bytes(self.cert_pem)
        _write_private(key_path, key_pem(self.key))
        return cert_path, key_path

    def _issue(self, subject_cn: str, sans: Sequence[x509.GeneralName],
               usages: Sequence[ObjectIdentifier] | None, *, days: float, key_kind: str,
               not_before: datetime.datetime | None = None,
               not_after: datetime.datetime | None = None,
               key: PrivateKey | None = None) -> Issued:
        key = key or new_key(key_kind)
        start = not_before or (_now() - datetime.timedelta(minutes=5))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(not_after or start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)),
                                            critical=False)
        return Issued(cert=builder.sign(self.key, hashes.SHA256()), key=key)

    def issue_amphora(self, amphora_id: str, *, days: float = 730, key_kind: str = "ec",
                      not_before: datetime.datetime | None = None) -> Issued:
        """Server certificate for an amphora agent: CN and DNS SAN = amphora id."""
        amphora_id = str(uuid.UUID(amphora_id))
        return self._issue(amphora_id, [x509.DNSName(amphora_id)],
                           [ExtendedKeyUsageOID.SERVER_AUTH], days=days, key_kind=key_kind,
                           not_before=not_before)

    def issue_amphora_variant(self, amphora_id: str, *, name: str | None = None,
                              key_kind: str = "ec",
                              usages: Sequence[ObjectIdentifier] | None = (
                                  ExtendedKeyUsageOID.SERVER_AUTH,),
                              not_before: datetime.datetime | None = None,
                              not_after: datetime.datetime | None = None) -> Issued:
        """An amphora server certificate with one property changed (the name
        it carries, its key, its EKU, its validity), for rotation tests."""
        name = name or str(uuid.UUID(amphora_id))
        return self._issue(name, [x509.DNSName(name)], usages, days=730, key_kind=key_kind,
                           not_before=not_before, not_after=not_after)

    def issue_amphora_sha1(self, amphora_id: str) -> Issued:
        """An amphora certificate signed with SHA-1. ``cryptography`` refuses to
        sign with SHA-1, so the ``openssl`` CLI signs it."""
        amphora_id = str(uuid.UUID(amphora_id))
        key = new_key("ec")
        with tempfile.TemporaryDirectory(prefix="pki-sha1-") as tmp:
            work = Path(tmp)
            _write_private(work / "ca.key", key_pem(self.key))
            (work / "ca.pem").write_bytes(self.cert_pem)
            _write_private(work / "leaf.key", key_pem(key))
            (work / "ext.cnf").write_text(
                f"subjectAltName = DNS:{amphora_id}\nextendedKeyUsage = serverAuth\n"
                "basicConstraints = critical, CA:FALSE\n")
            subprocess.run(["openssl", "req", "-new", "-key", str(work / "leaf.key"),
                            "-subj", f"/CN={amphora_id}", "-out", str(work / "leaf.csr")],
                           check=True, capture_output=True)
            subprocess.run(["openssl", "x509", "-req", "-sha1", "-days", "30",
                            "-in", str(work / "leaf.csr"), "-CA", str(work / "ca.pem"),
                            "-CAkey", str(work / "ca.key"), "-set_serial",
                            str(x509.random_serial_number()), "-extfile", str(work / "ext.cnf"),
                            "-out", str(work / "leaf.pem")], check=True, capture_output=True)
            cert = x509.load_pem_x509_certificate((work / "leaf.pem").read_bytes())
        return Issued(cert=cert, key=key)

    def issue_client(self, name: str = "controller", *, days: int = 730,
                     key_kind: str = "ec",
                     extra_sans: Sequence[x509.GeneralName] = ()) -> Issued:
        """Client certificate for a controller (CN = name, DNS SAN = name)."""
        return self._issue(name, [x509.DNSName(name), *extra_sans],
                           [ExtendedKeyUsageOID.CLIENT_AUTH], days=days, key_kind=key_kind)

    def crl(self, revoked: Iterable[x509.Certificate], *, days: int = 1) -> bytes:
        """A PEM CRL revoking ``revoked``, valid for ``days``."""
        now = _now()
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.cert.subject)
                   .last_update(now - datetime.timedelta(minutes=5))
                   .next_update(now + datetime.timedelta(days=days)))
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                .revocation_date(now - datetime.timedelta(minutes=1)).build())
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def issue_server(self, name: str, *, days: int = 730, key_kind: str = "ec") -> Issued:
        """Server certificate for a DNS name or an IP address (e.g. a listener's)."""
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            san = x509.DNSName(name)
        return self._issue(name, [san], [ExtendedKeyUsageOID.SERVER_AUTH], days=days,
                           key_kind=key_kind)
