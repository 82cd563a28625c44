"""Who may drive an amphora: client-certificate posture on a running agent."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import uuid
from pathlib import Path

import pytest
from cryptography import x509

from controller_stub.client import AgentClient, Forbidden
from controller_stub.local_agent import Pki, RunningAgent


def _client(agent: RunningAgent, cert: Path) -> AgentClient:
    return AgentClient(agent.host, agent.amphora_id, ca_file=str(agent.pki.ca_file),
                       client_cert=str(cert), port=agent.port, retries=0)


def _request(agent: RunningAgent, cert: Path) -> bytes:
    """One handshake and request with ``cert``; always read, because with
    TLS 1.3 the server's verdict on the client arrives at the first read."""
    ctx = ssl.create_default_context(cafile=str(agent.pki.ca_file))
    ctx.load_cert_chain(str(cert))
    with socket.create_connection((agent.host, agent.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=agent.amphora_id) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
            return data


def test_amphora_certificate_is_refused_by_default(shared_agent: RunningAgent,
                                                   pki: Pki) -> None:
    amphora_id = str(uuid.uuid4())
    _issued, amphora_cert = pki.client_issued(amphora_id)
    with _client(shared_agent, amphora_cert) as client:
        with pytest.raises(Forbidden) as err:
            client.info()
    assert err.value.status == 403
    assert f"client identity {amphora_id} is an amphora id" in err.value.body["details"]
    with shared_agent.client() as client:  # the controller is not affected
        assert client.info()["api_version"] == "1.0"


def test_uuid_identity_allowed_when_configured(make_agent, pki: Pki) -> None:
    agent = make_agent(amphora={"allow_uuid_client_identity": "true"})
    _issued, uuid_cert = pki.client_issued(str(uuid.uuid4()))
    with _client(agent, uuid_cert) as client:
        assert client.info()["api_version"] == "1.0"


def test_empty_pinning_warns_loudly_at_start(shared_agent: RunningAgent) -> None:
    log = shared_agent.process.log_tail(200)
    assert "WARNING amphora_agent.identity: allowed_client_identities is empty" in log


def test_pinning_matches_only_cn_and_dns_names(make_agent, pki: Pki) -> None:
    pinned = "controller, ops@example.org, spiffe://example.org/ops, 192.0.2.10"
    agent = make_agent(amphora={"allowed_client_identities": pinned})
    intruder = pki.ca.issue_client("intruder", extra_sans=[
        x509.RFC822Name("ops@example.org"),
        x509.UniformResourceIdentifier("spiffe://example.org/ops"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.10"))])
    intruder_file = intruder.write(pki.root / "intruder.pem")
    with _client(agent, intruder_file) as client:
        with pytest.raises(Forbidden) as err:
            client.info()
    assert err.value.body["details"] == "client identity intruder is not allowed"
    # a DNS SAN does match, whatever the CN
    ops = pki.ca.issue_client("ops-cn", extra_sans=[x509.DNSName("controller")])
    with _client(agent, ops.write(pki.root / "ops-cn.pem")) as client:
        assert client.info()["api_version"] == "1.0"
    assert "allowed_client_identities is empty" not in agent.process.log_tail(200)


def test_put_config_pinning_applies_to_the_next_request(make_agent, pki: Pki) -> None:
    agent = make_agent()
    _issued, stranger_cert = pki.client_issued("stranger")
    pid = agent.process.pid
    with _client(agent, stranger_cert) as stranger:
        assert stranger.info()["api_version"] == "1.0"
        text = agent.config_file.read_text()
        assert "[amphora]\n" in text
        pinned = text.replace("[amphora]\n",
                              "[amphora]\nallowed_client_identities = controller\n")
        with agent.client() as controller:
            controller.put_config(pinned)
            # same kept-alive connection for the stranger, next request refused
            with pytest.raises(Forbidden):
                stranger.info()
            assert controller.info()["api_version"] == "1.0"
            controller.put_config(text)
            assert stranger.info()["api_version"] == "1.0"
    assert agent.process.pid == pid and agent.process.proc.poll() is None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_revoked_client_is_refused_at_the_handshake(make_agent, pki: Pki,
                                                    tmp_path: Path) -> None:
    revoked, revoked_file = pki.client_issued("revoked-controller")
    later, later_file = pki.client_issued("later-revoked")
    crl_file = tmp_path / "client.crl"
    crl_file.write_bytes(pki.ca.crl([revoked.cert]))
    agent = make_agent(amphora={"client_crl_file": str(crl_file)})

    assert _request(agent, pki.client_file).startswith(b"HTTP/1.1 200")
    assert _request(agent, later_file).startswith(b"HTTP/1.1 200")
    with pytest.raises(ssl.SSLError) as err:
        _request(agent, revoked_file)
    assert "CERTIFICATE_REVOKED" in str(err.value).upper()

    # a new CRL applies to the next handshake, without a restart
    _write_atomic(crl_file, pki.ca.crl([revoked.cert, later.cert]))
    with pytest.raises(ssl.SSLError) as err:
        _request(agent, later_file)
    assert "CERTIFICATE_REVOKED" in str(err.value).upper()
    assert _request(agent, pki.client_file).startswith(b"HTTP/1.1 200")
