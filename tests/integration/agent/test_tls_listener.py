"""The agent's TLS listener: ECDHE+AEAD suites only, no renegotiation."""

from __future__ import annotations

import select
import socket
import ssl
import subprocess
import time

import pytest

from controller_stub.local_agent import RunningAgent

AEAD_TLS12 = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
              "ECDHE-ECDSA-CHACHA20-POLY1305")
# CBC suites with SHA-2 MACs: Python's default server cipher list accepts them
NON_AEAD_TLS12 = ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384")


def _tls12_request(agent: RunningAgent, cipher: str) -> tuple[str, bytes]:
    ctx = agent.client_context(minimum_version=ssl.TLSVersion.TLSv1_2,
                               maximum_version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(cipher)
    with socket.create_connection((agent.host, agent.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=agent.amphora_id) as tls:
            negotiated = tls.cipher()
            tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
    assert negotiated is not None
    return negotiated[0], data


@pytest.mark.parametrize("cipher", NON_AEAD_TLS12)
def test_tls12_non_aead_suite_is_refused(shared_agent: RunningAgent, cipher: str) -> None:
    with pytest.raises(ssl.SSLError) as err:
        _tls12_request(shared_agent, cipher)
    assert "HANDSHAKE_FAILURE" in str(err.value).upper()


def test_tls12_aead_suites_are_served(shared_agent: RunningAgent) -> None:
    for cipher in AEAD_TLS12:
        negotiated, reply = _tls12_request(shared_agent, cipher)
        assert negotiated == cipher
        assert reply.startswith(b"HTTP/1.1 200")


def test_client_renegotiation_is_refused(shared_agent: RunningAgent) -> None:
    """``R`` on s_client's stdin starts a TLS 1.2 renegotiation; the server
    must answer with a no_renegotiation alert, never a second handshake."""
    agent = shared_agent
    proc = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"{agent.host}:{agent.port}", "-tls1_2",
         "-CAfile", str(agent.pki.ca_file), "-cert", str(agent.pki.client_file),
         "-servername", agent.amphora_id],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    output = b""
    try:
        proc.stdin.write(b"R\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        while b"no renegotiation" not in output:
            assert time.monotonic() < deadline, output.decode(errors="replace")
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = proc.stdout.read1(65536)
                if not chunk:  # s_client exited
                    break
                output += chunk
    finally:
        proc.kill()
        proc.wait(5)
    text = output.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in text  # the first handshake succeeded
    assert "RENEGOTIATING" in text
    assert "no renegotiation" in text, text
