"""Slow and stuck clients against the real agent: they may not hold its
threads, and the server closes each of them within its bound."""

from __future__ import annotations

import select
import socket
import ssl
import time
import uuid

import pytest

from controller_stub.local_agent import RunningAgent

STALLED = 50
HANDSHAKE_TIMEOUT = 4  # seconds, the agent's handshake_timeout in this test
SLACK = 3.0  # the worker checks deadlines about once a second


def _stalled_handshake(agent: RunningAgent) -> socket.socket:
    sock = socket.create_connection((agent.host, agent.port), timeout=5)
    sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello's first bytes, then nothing
    return sock


def _response(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += tls.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += tls.recv(4096)
    return head


def _stalled_mid_request(agent: RunningAgent, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """A kept-alive connection that served one request, then sends half a head."""
    raw = socket.create_connection((agent.host, agent.port), timeout=5)
    tls = ctx.wrap_socket(raw, server_hostname=agent.amphora_id)
    tls.sendall(b"GET /1.0/info HTTP/1.1\r\nHost: amphora\r\n\r\n")
    assert _response(tls).startswith(b"HTTP/1.1 200")
    tls.sendall(b"GET /1.0/info HTTP/1.1\r\nHost: amph")  # and nothing more
    return tls


def _closed_by(sockets: list[socket.socket], deadline: float) -> list[socket.socket]:
    """Those of ``sockets`` the server closed before ``deadline``."""
    open_ = {s.fileno(): s for s in sockets}
    closed = []
    while open_ and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_), [], [], 0.2)
        for fd in readable:
            sock = open_[fd]
            try:
                data = sock.recv(4096)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            except (BlockingIOError, ssl.SSLWantReadError):
                continue
            if not data:
                closed.append(open_.pop(fd))
    return closed


def test_info_answers_with_50_stalled_handshakes_and_50_stalled_requests(make_agent) -> None:
    agent = make_agent(amphora={"handshake_timeout": str(HANDSHAKE_TIMEOUT)})
    ctx = agent.client_context()
    handshakes: list[socket.socket] = []
    requests: list[ssl.SSLSocket] = []
    try:
        started = time.monotonic()
        for _ in range(STALLED):
            handshakes.append(_stalled_handshake(agent))
        for _ in range(STALLED):
            requests.append(_stalled_mid_request(agent, ctx))

        # a controller's fresh connection is answered while all of them hang
        with agent.client(retries=0) as client:
            client.timeouts.connect = client.timeouts.read = HANDSHAKE_TIMEOUT - 1
            assert client.info()["api_version"] == "1.0"

        closed = _closed_by(handshakes, started + HANDSHAKE_TIMEOUT + SLACK)
        assert len(closed) == STALLED
        closed = _closed_by(requests, time.monotonic() + HANDSHAKE_TIMEOUT + SLACK)
        assert len(closed) == STALLED
    finally:
        for sock in handshakes + requests:
            sock.close()


def test_a_request_sent_slowly_is_served_beside_stalled_clients(make_agent) -> None:
    """Reads are non-blocking, not impatient: with more stalled clients than
    threads, a head and body arriving in pieces (pausing less than the bound)
    make one request, answered at once, and the request pipelined behind it
    is served too."""
    agent = make_agent(amphora={"handshake_timeout": str(HANDSHAKE_TIMEOUT)})
    ctx = agent.client_context()
    stalled = [_stalled_mid_request(agent, ctx) for _ in range(8)]  # 4 threads
    lb_path = f"/1.0/loadbalancer/{agent.amphora_id}/{uuid.uuid4()}/haproxy".encode()
    body = b"global\n    no-such-keyword\n"
    parts = [b"PUT " + lb_path + b" HTTP/1.1\r\nHost: amphora\r\n",
             b"Content-Length: %d\r\n\r\n" % len(body), body[:5]]
    last = body[5:] + b"GET /1.0/info HTTP/1.1\r\nHost: amphora\r\n\r\n"
    try:
        with socket.create_connection((agent.host, agent.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=agent.amphora_id) as tls:
                for part in parts:
                    tls.sendall(part)
                    time.sleep(0.3)  # a slow client is what is under test, not a sync
                    tls.setblocking(False)
                    with pytest.raises(ssl.SSLWantReadError):
                        tls.recv(1)  # nothing answers half a request
                    tls.settimeout(HANDSHAKE_TIMEOUT - 1)
                tls.sendall(last)
                assert _response(tls).startswith(b"HTTP/1.1 400")  # haproxy -c refused it
                assert _response(tls).startswith(b"HTTP/1.1 200")
        # a client that waits for "100 Continue" before its body gets it at once
        with socket.create_connection((agent.host, agent.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=agent.amphora_id) as tls:
                tls.settimeout(HANDSHAKE_TIMEOUT - 1)
                tls.sendall(parts[0] + b"Expect: 100-continue\r\n" + parts[1])
                assert tls.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
                tls.sendall(body)
                assert _response(tls).startswith(b"HTTP/1.1 400")
    finally:
        for sock in stalled:
            sock.close()
