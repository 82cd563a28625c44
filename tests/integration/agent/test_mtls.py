"""Mutual TLS at the handshake, against the real agent under gunicorn."""

from __future__ import annotations

import socket
import ssl
import subprocess

import pytest

from controller_stub.client import Forbidden
from controller_stub.local_agent import Pki, RunningAgent
from controller_stub.pki import CertificateAuthority


def _handshake(agent: RunningAgent, ctx: ssl.SSLContext) -> bytes:
    """Handshake and one request; the server's verdict on the client shows up
    at the first read with TLS 1.3, so always read."""
    with socket.create_connection((agent.host, agent.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=agent.amphora_id) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
            return data


def test_tls12_and_tls13_work(shared_agent: RunningAgent) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = shared_agent.client_context(minimum_version=version, maximum_version=version)
        reply = _handshake(shared_agent, ctx)
        assert reply.startswith(b"HTTP/1.1 200"), (version, reply[:100])
        assert b'"api_version":"1.0"' in reply


def _refusal(agent: RunningAgent, ctx: ssl.SSLContext) -> ssl.SSLError:
    """Handshake, then only read: the server's alert is the next thing on the wire
    (TLS 1.3 sends it after the client's Finished). The client sends nothing after
    the handshake, so the server never resets the connection over unread data and
    the alert itself is what the client sees."""
    with socket.create_connection((agent.host, agent.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError) as err:
            with ctx.wrap_socket(raw, server_hostname=agent.amphora_id) as tls:
                tls.recv(1)
    return err.value


@pytest.mark.parametrize(("version", "alert"), [
    (ssl.TLSVersion.TLSv1_3, "TLSV13_ALERT_CERTIFICATE_REQUIRED"),
    (ssl.TLSVersion.TLSv1_2, "SSLV3_ALERT_HANDSHAKE_FAILURE"),
])
def test_no_client_certificate_is_refused(shared_agent: RunningAgent, version: ssl.TLSVersion,
                                          alert: str) -> None:
    ctx = ssl.create_default_context(cafile=str(shared_agent.pki.ca_file))
    ctx.minimum_version = ctx.maximum_version = version
    assert alert in str(_refusal(shared_agent, ctx))


def test_certificate_from_another_ca_is_refused(shared_agent: RunningAgent, tmp_path) -> None:
    other = CertificateAuthority.create("Rogue CA")
    rogue = other.issue_client("controller").write(tmp_path / "rogue.pem")
    ctx = ssl.create_default_context(cafile=str(shared_agent.pki.ca_file))
    ctx.load_cert_chain(str(rogue))
    assert "TLSV1_ALERT_UNKNOWN_CA" in str(_refusal(shared_agent, ctx))


def test_tls11_is_refused_by_the_server(shared_agent: RunningAgent) -> None:
    # openssl s_client at security level 0 offers TLS 1.1 for real; the
    # agent must answer with a protocol-version alert.
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"{shared_agent.host}:{shared_agent.port}",
         "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", str(shared_agent.pki.ca_file),
         "-cert", str(shared_agent.pki.client_file), "-servername", shared_agent.amphora_id],
        input=b"", capture_output=True, timeout=20, check=False)
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode != 0
    # alert 70 is protocol_version, sent by the server
    assert "alert protocol version" in output and "alert number 70" in output, output
    assert "New, TLSv1.1" not in output


def test_server_certificate_names_the_amphora(shared_agent: RunningAgent) -> None:
    ctx = shared_agent.client_context()
    with socket.create_connection((shared_agent.host, shared_agent.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="not-the-amphora")


def test_pinned_identities(make_agent, pki: Pki) -> None:
    agent = make_agent(amphora={"allowed_client_identities": "controller, ops-1"})
    with agent.client() as client:
        assert client.info()["api_version"] == "1.0"
    _issued, stranger = pki.client_issued("amphora-7")
    from controller_stub.client import AgentClient

    with AgentClient(agent.host, agent.amphora_id, ca_file=str(pki.ca_file),
                     client_cert=str(stranger), port=agent.port, retries=0) as client:
        with pytest.raises(Forbidden) as err:
            client.info()
    assert err.value.status == 403
    assert "amphora-7" in err.value.body["details"]


def test_stalled_handshakes_do_not_silence_the_agent(make_agent) -> None:
    """Half a ClientHello on every worker thread must not block the next client."""
    agent = make_agent(amphora={"threads": "2", "handshake_timeout": "1"})
    stalled = []
    try:
        for _ in range(6):
            sock = socket.create_connection((agent.host, agent.port), timeout=5)
            sock.sendall(b"\x16\x03\x01\x02")  # a TLS record header, then nothing
            stalled.append(sock)
        import time

        start = time.monotonic()
        with agent.client(retries=0) as client:
            client.timeouts.read = 20
            assert client.info()["api_version"] == "1.0"
        assert time.monotonic() - start < 15
        # the stalled connections were dropped by the server
        for sock in stalled:
            sock.settimeout(5)
            assert sock.recv(1) == b""
    finally:
        for sock in stalled:
            sock.close()
