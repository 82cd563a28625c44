"""PUT /1.0/certificate can never lock the controller out: every certificate a
controller could not connect to is refused, and the old one keeps serving."""

from __future__ import annotations

import datetime
import os
import socket
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller_stub.client import BadRequest
from controller_stub.local_agent import RunningAgent
from controller_stub.pki import CertificateAuthority, Issued, cert_pem, new_key


def _served_cert(agent: RunningAgent) -> bytes:
    """DER of the certificate a fresh handshake is served."""
    ctx = agent.client_context()
    with socket.create_connection((agent.host, agent.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=agent.amphora_id) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _weak_chain_cert() -> bytes:
    """A self-signed SHA-256 CA with an RSA-1024 key: every per-certificate
    check passes, but OpenSSL refuses it in a chain (CA key too small), so
    only building the real server context catches it."""
    key = new_key("rsa1024")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak intermediate")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert_pem(cert)


def _pem(issued: Issued) -> bytes:
    return issued.pem


# name -> (body for this amphora, expected reason in the 400's details)
BadPem = Callable[[CertificateAuthority, str], bytes]
BAD_PEMS: dict[str, tuple[BadPem, str]] = {
    "wrong name": (lambda ca, amp: ca.issue_amphora_variant(amp, name=str(uuid.uuid4())).pem,
                   "no DNS subjectAltName names amphora"),
    "clientAuth-only EKU": (
        lambda ca, amp: ca.issue_amphora_variant(
            amp, usages=[ExtendedKeyUsageOID.CLIENT_AUTH]).pem,
        "does not include serverAuth"),
    "RSA-1024": (lambda ca, amp: ca.issue_amphora_variant(amp, key_kind="rsa1024").pem,
                 "RSA key of 1024 bits"),
    "P-192": (lambda ca, amp: ca.issue_amphora_variant(amp, key_kind="p192").pem,
              "EC curve secp192r1"),
    "Ed25519": (lambda ca, amp: ca.issue_amphora_variant(amp, key_kind="ed25519").pem,
                "key type not accepted"),
    "SHA-1 leaf": (lambda ca, amp: ca.issue_amphora_sha1(amp).pem,
                   "certificate is signed with SHA1"),
    "SHA-1 chain certificate": (
        lambda ca, amp: (ca.issue_amphora(amp).pem + ca.issue_amphora_sha1(amp).cert_pem),
        "chain certificate 1 is signed with SHA1"),
    "expiring in 30 minutes": (
        lambda ca, amp: ca.issue_amphora_variant(
            amp, not_after=_now() + datetime.timedelta(minutes=30)).pem,
        "less than 1:00:00 from now"),
    "not yet valid": (
        lambda ca, amp: ca.issue_amphora_variant(
            amp, not_before=_now() + datetime.timedelta(days=1)).pem,
        "not valid before"),
    "key mismatch": (
        lambda ca, amp: ca.issue_amphora(amp).cert_pem + ca.issue_amphora(amp).key_pem,
        "private key does not match"),
    "chain that OpenSSL refuses": (
        lambda ca, amp: ca.issue_amphora(amp).pem + _weak_chain_cert(),
        "cannot serve TLS with it (CA_KEY_TOO_SMALL)"),
}


@pytest.mark.parametrize("case", sorted(BAD_PEMS))
def test_refused_rotation_keeps_the_old_certificate_serving(shared_agent: RunningAgent,
                                                            case: str) -> None:
    agent = shared_agent
    make, reason = BAD_PEMS[case]
    cert_file = Path(agent.settings.agent_server_cert)
    installed = cert_file.read_bytes()
    before = _served_cert(agent)
    with agent.client(retries=0) as client:
        with pytest.raises(BadRequest) as err:
            client.rotate_certificate(make(agent.pki.ca, agent.amphora_id))
        assert err.value.status == 400
        assert reason in err.value.body["details"], err.value.body
        assert client.info()["api_version"] == "1.0"
    assert _served_cert(agent) == before  # a new handshake still gets the old cert
    assert cert_file.read_bytes() == installed
    assert not Path(str(cert_file) + ".prev").exists()
    assert not [p.name for p in cert_file.parent.iterdir() if p.name.endswith(".new")]


def test_previous_certificate_is_kept_and_serves_when_the_installed_one_cannot(
        make_agent) -> None:
    agent = make_agent()
    cert_file = Path(agent.settings.agent_server_cert)
    original = cert_file.read_bytes()
    rsa = agent.pki.ca.issue_amphora(agent.amphora_id, key_kind="rsa")
    with agent.client() as client:
        client.rotate_certificate(rsa.pem)
    assert _served_cert(agent) == rsa.cert.public_bytes(Encoding.DER)
    previous = Path(str(cert_file) + ".prev")
    assert previous.read_bytes() == original
    assert stat.S_IMODE(os.stat(previous).st_mode) == 0o600

    # The installed certificate goes bad behind the agent's back (a cert
    # whose key is not its own cannot build a context); a restart must
    # serve the previous one and say why, not refuse to start.
    agent.process.stop()
    other = agent.pki.ca.issue_amphora(agent.amphora_id)
    cert_file.write_bytes(rsa.cert_pem + other.key_pem)
    agent.process.start()
    with agent.client() as client:
        agent.process.wait_ready(client)
        assert client.info()["api_version"] == "1.0"
    original_leaf = x509.load_pem_x509_certificates(original)[0]
    assert _served_cert(agent) == original_leaf.public_bytes(Encoding.DER)
    log = agent.process.log_tail(200)
    assert f"server certificate {cert_file} cannot serve TLS" in log
    assert f"serving the previous certificate {previous}" in log
