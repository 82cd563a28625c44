"""The controller's agent client never reads an unbounded answer into memory.

A tiny mTLS server (the amphora's certificate, the controller's CA) streams a
body far larger than the client's bound, with and without Content-Length.
"""

from __future__ import annotations

import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller_stub.client import AgentClient, ResponseTooLarge
from controller_stub.local_agent import Pki

BOUND = 1024 * 1024
HUGE = 64 * 1024 * 1024
CHUNK = 64 * 1024


@dataclass
class StreamingAgent:
    """Answers each request with ``HUGE`` bytes, or a small JSON body for ``/small``."""

    context: ssl.SSLContext
    amphora_id: str
    listener: socket.socket = field(init=False)
    sent: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(20)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:  # closed by the test, or nobody came
                return
            with raw:
                raw.settimeout(20)
                try:
                    with self.context.wrap_socket(raw, server_side=True) as tls:
                        self._answer(tls)
                except OSError:
                    pass

    def _answer(self, tls: ssl.SSLSocket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = tls.recv(4096)
            if not chunk:
                return
            request += chunk
        path = request.split(b" ", 2)[1]
        if path == b"/small":
            body = b'{"ok": true}'
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            return
        chunked = path.endswith(b"haproxy")
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + (b"Transfer-Encoding: chunked\r\n" if chunked
                   else b"Content-Length: %d\r\n" % HUGE) + b"\r\n")
        tls.sendall(head)
        sent = 0
        filler = b"[" + b"0," * (CHUNK // 2 - 1) + b"0"
        try:
            while sent < HUGE:
                piece = filler[:min(CHUNK, HUGE - sent)]
                tls.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if chunked:
                tls.sendall(b"0\r\n\r\n")
        finally:
            self.sent.append(sent)

    def close(self) -> None:
        if self.listener.fileno() != -1:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
            self.listener.close()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def streaming_agent(pki: Pki, tmp_path: Path) -> Iterator[StreamingAgent]:
    amphora_id = str(uuid.uuid4())
    server_pem = pki.ca.issue_amphora(amphora_id).write(tmp_path / "server.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(pki.ca_file))
    context.load_cert_chain(str(server_pem))
    server = StreamingAgent(context, amphora_id)
    yield server
    server.close()


def _client(server: StreamingAgent, pki: Pki) -> AgentClient:
    return AgentClient("127.0.0.1", server.amphora_id, ca_file=str(pki.ca_file),
                       client_cert=str(pki.client_file), port=server.port, retries=0,
                       max_response_size=BOUND)


def test_oversized_answers_raise_instead_of_being_read(streaming_agent: StreamingAgent,
                                                       pki: Pki) -> None:
    with _client(streaming_agent, pki) as client:
        assert client.request("GET", "/small").json() == {"ok": True}
        # announced with Content-Length: refused before the body is read
        with pytest.raises(ResponseTooLarge, match=f"more than the {BOUND} allowed"):
            client.details()
        # chunked, no length: refused once the bound is passed
        with pytest.raises(ResponseTooLarge, match=f"exceeds {BOUND} bytes"):
            client.get_haproxy(str(uuid.uuid4()))
    streaming_agent.close()
    # the client hung up long before the server could send it all
    assert len(streaming_agent.sent) == 2
    assert all(sent < HUGE // 4 for sent in streaming_agent.sent), streaming_agent.sent
