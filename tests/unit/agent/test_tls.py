"""The server TLS context and the rotation name rule, without a running agent."""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import pytest

from amphora_agent.certcheck import validate_server_pem
from amphora_agent.errors import InvalidRequest
from amphora_agent.tls import build_server_context
from controller_stub.pki import CertificateAuthority


def test_server_context_offers_only_ecdhe_aead_and_no_renegotiation(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    cert = ca.issue_amphora(str(uuid.uuid4())).write(tmp_path / "server.pem")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    context = build_server_context(str(cert), str(tmp_path / "ca.pem"))
    assert context.options & ssl.OP_NO_RENEGOTIATION
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12
    assert [c["name"] for c in tls12 if not c["aead"] or c["kea"] != "kx-ecdhe"] == []


def test_without_amphora_id_the_new_cert_must_keep_the_installed_name(
        tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    name, other = str(uuid.uuid4()), str(uuid.uuid4())
    installed = ca.issue_amphora(name).write(tmp_path / "server.pem")
    with pytest.raises(InvalidRequest) as err:
        validate_server_pem(ca.issue_amphora(other).pem, amphora_id=None,
                            installed_cert=str(installed))
    assert f"matches the installed certificate's ({name})" in err.value.body()["details"]
    leaf = validate_server_pem(ca.issue_amphora(name).pem, amphora_id=None,
                               installed_cert=str(installed))
    assert leaf.subject.rfc4514_string() == f"CN={name}"
