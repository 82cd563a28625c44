"""Certificate rotation, config replacement and heartbeats on a live agent."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from amphora_contract import heartbeat
from controller_stub.client import BadRequest
from controller_stub.local_agent import RunningAgent


def _served_cert(agent: RunningAgent) -> bytes:
    ctx = agent.client_context()
    with socket.create_connection((agent.host, agent.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=agent.amphora_id) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_rotation_bad_cert_keeps_old_good_cert_served_next(make_agent) -> None:
    agent = make_agent()
    before = _served_cert(agent)
    with agent.client() as client:
        wrong_key = agent.pki.ca.issue_amphora(agent.amphora_id)
        other = agent.pki.ca.issue_amphora(agent.amphora_id)
        with pytest.raises(BadRequest):
            client.rotate_certificate(wrong_key.cert_pem + other.key_pem)
        assert _served_cert(agent) == before
        assert client.info()["api_version"] == "1.0"

        fresh = agent.pki.ca.issue_amphora(agent.amphora_id)
        client.rotate_certificate(fresh.pem)
    from cryptography.hazmat.primitives.serialization import Encoding

    assert _served_cert(agent) == fresh.cert.public_bytes(Encoding.DER)
    with agent.client() as client:  # and the new cert verifies against the amphora id
        assert client.info()["api_version"] == "1.0"


def test_dotdot_on_the_wire_is_400_and_writes_nothing(shared_agent: RunningAgent) -> None:
    ctx = shared_agent.client_context()
    root = shared_agent.config_file.parent
    before = {p for p in root.rglob("*")}
    for path in ("/1.0/loadbalancer/../certificates/x.pem",
                 "/1.0/loadbalancer/00000000-0000-0000-0000-000000000000/certificates/../x.pem"):
        request = (f"PUT {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n"
                   "Connection: close\r\n\r\n-----BEGIN ").encode()
        with socket.create_connection((shared_agent.host, shared_agent.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=shared_agent.amphora_id) as tls:
                tls.sendall(request)
                reply = b""
                while chunk := tls.recv(4096):
                    reply += chunk
        assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
        assert b'"message":"Invalid request"' in reply
    assert {p for p in root.rglob("*")} == before
    assert not (Path("/") / "x.pem").exists()


def _receiver(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(10)
    return sock


def test_heartbeats_follow_put_config_without_restart(make_agent) -> None:
    first, second = _receiver(), _receiver()
    try:
        agent = make_agent(controllers=[f"127.0.0.1:{first.getsockname()[1]}"],
                           heartbeat_interval=1, heartbeat_key="key-one")
        data, _ = first.recvfrom(65535)
        message = heartbeat.unwrap(data, "key-one")
        assert message["id"] == agent.amphora_id and message["ver"] == 3
        with pytest.raises(heartbeat.EnvelopeError):
            heartbeat.unwrap(data, "key-two")

        text = agent.config_file.read_text()
        text = text.replace(f"127.0.0.1:{first.getsockname()[1]}",
                            f"127.0.0.1:{second.getsockname()[1]}")
        text = text.replace("heartbeat_key = key-one", "heartbeat_key = key-two")
        pid = agent.process.pid
        with agent.client() as client:
            client.put_config(text)
        deadline = time.monotonic() + 10
        while True:
            data, _ = second.recvfrom(65535)
            try:
                message = heartbeat.unwrap(data, "key-two")
                break
            except heartbeat.EnvelopeError:
                assert time.monotonic() < deadline
        assert message["id"] == agent.amphora_id
        assert agent.process.pid == pid and agent.process.proc.poll() is None
    finally:
        first.close()
        second.close()


def test_no_heartbeat_key_means_no_heartbeats(make_agent) -> None:
    sink = _receiver()
    sink.settimeout(2.5)
    try:
        agent = make_agent(controllers=[f"127.0.0.1:{sink.getsockname()[1]}"],
                           heartbeat_interval=1)
        with pytest.raises(TimeoutError):
            sink.recvfrom(65535)
        assert "heartbeat_key is not set" in agent.process.log_tail()
        # Control: the silence was the missing key, not a sink the agent never
        # sends to. With a key set, the same sink hears a heartbeat.
        text = agent.config_file.read_text()
        assert "\nheartbeat_key =" not in text
        text = text.replace("heartbeat_interval = 1\n",
                            "heartbeat_interval = 1\nheartbeat_key = late-key\n")
        with agent.client() as client:
            client.put_config(text)
        sink.settimeout(10)
        data, _ = sink.recvfrom(65535)
        assert heartbeat.unwrap(data, "late-key")["id"] == agent.amphora_id
    finally:
        sink.close()


def test_keep_alive_reuses_one_connection(shared_agent: RunningAgent) -> None:
    ctx = shared_agent.client_context(maximum_version=ssl.TLSVersion.TLSv1_3)
    with socket.create_connection((shared_agent.host, shared_agent.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=shared_agent.amphora_id) as tls:
            for _ in range(3):
                tls.sendall(b"GET /1.0/info HTTP/1.1\r\nHost: a\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = tls.recv(4096)
                    assert chunk, "the agent closed a kept-alive connection"
                    head += chunk
                header, _, body = head.partition(b"\r\n\r\n")
                assert header.startswith(b"HTTP/1.1 200")
                assert b"connection: close" not in header.lower()
                length = int(next(line.split(b":")[1] for line in header.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(body) < length:
                    chunk = tls.recv(4096)
                    assert chunk, "the agent closed the connection mid-body"
                    body += chunk
                assert len(body) == length and b"haproxy_version" in body
