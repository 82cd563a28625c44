"""Throwaway PKI for rendering tests: CA, server/SNI/client certs and a CRL.

Every path a rendered config names must exist for ``haproxy -c``, so tests
write real PEM files (cryptography, EC P-256 for speed) into a tmp dir.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_NOW = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_LATER = datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC)


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM) + self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_NOW).not_valid_after(_LATER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def issue(ca: Issued, cn: str, *, client: bool = False) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(_NOW).not_valid_after(_LATER)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if not client:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]),
                                        critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def make_crl(ca: Issued) -> bytes:
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
           .last_update(_NOW).next_update(_LATER).sign(ca.key, hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.PEM)


# Filenames the representative LBs reference (container refs name PEM files).
CERT_FILES = ("default.pem", "sni1.pem", "sni2.pem", "client_ca.pem", "client_crl.pem",
              "pool_client.pem", "pool_ca.pem", "pool_crl.pem")


@dataclass
class PKI:
    ca: Issued
    server: Issued
    sni1: Issued
    sni2: Issued
    client: Issued
    files: dict[str, bytes]

    def install(self, cert_dir: Path, lb_id: str) -> Path:
        """Write every PEM as the agent would: {cert_dir}/{lb_id}/{filename}."""
        lb_dir = cert_dir / lb_id
        lb_dir.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (lb_dir / name).write_bytes(data)
        return lb_dir


def make_pki() -> PKI:
    ca = make_ca("Amphora test CA")
    server = issue(ca, "www.example.com")
    sni1 = issue(ca, "sni1.example.com")
    sni2 = issue(ca, "sni2.example.com")
    client = issue(ca, "client.example.com", client=True)
    crl = make_crl(ca)
    files = {
        "default.pem": server.pem(), "sni1.pem": sni1.pem(), "sni2.pem": sni2.pem(),
        "client_ca.pem": ca.cert_pem(), "client_crl.pem": crl,
        "pool_client.pem": client.pem(), "pool_ca.pem": ca.cert_pem(), "pool_crl.pem": crl,
    }
    return PKI(ca, server, sni1, sni2, client, files)
