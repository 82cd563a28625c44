"""A gunicorn ``gthread`` worker whose pool threads only ever run complete requests.

The stock worker handshakes TLS and reads the request on a blocking socket
in a pool thread: a client that sends half a ClientHello, or half a request
on a kept-alive connection, holds one of the few threads for as long as it
trickles bytes, and a handful of them silence the agent (``GET /1.0/info``
included). Here the worker's event loop does the handshake and reads the
request head and body without blocking, under per-connection deadlines, and
hands a connection to the pool only once a whole request (or one the app
will refuse: a body over the limit, a malformed head) is buffered. Threads
thus never wait for a client to send; a client that does not read its
response holds a thread for ``handshake_timeout`` per write at most.

Deadlines (from :func:`worker_class`):

- the TLS handshake must finish within ``handshake_timeout`` of accept;
- a request head must arrive within ``handshake_timeout`` of its first
  byte, and a body may not pause longer than that between bytes nor take
  longer than ``request_timeout`` in all;
- an idle kept-alive connection is closed after gunicorn's ``keepalive``.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import ssl
import time
from typing import Any

from gunicorn import http, sock
from gunicorn.workers.gthread import TConn, ThreadWorker

_HEAD_END = b"\r\n\r\n"
_CHUNK_LINE_LIMIT = 4096
_RECV = 256 * 1024
LINGER = 2.0  # seconds a refused connection is drained before it is closed
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class RequestScanner:
    """Finds where a buffered HTTP/1.1 request ends, without parsing it for real.

    It only needs to tell "complete" from "more to come"; anything it does not
    understand counts as complete, so gunicorn's own parser answers it (400)
    from the buffer, without reading the socket.
    """

    def __init__(self, max_body: int, head_limit: int) -> None:
        self.max_body = max_body
        self.head_limit = head_limit
        self.reset()

    def reset(self) -> None:
        self.head_end: int | None = None
        self.body_length: int | None = None  # Content-Length
        self.chunked = False
        self.position = 0  # where chunk scanning resumes
        self.decoded = 0
        self.expects_continue = False

    def complete(self, buf: bytearray) -> bool:
        if self.head_end is None:
            end = buf.find(_HEAD_END, max(0, self.position - 3))
            if end < 0:
                self.position = len(buf)
                return len(buf) > self.head_limit
            self.head_end = end + len(_HEAD_END)
            self.position = self.head_end
            if not self._read_head(bytes(buf[:end])):
                return True
        if self.chunked:
            return self._chunks_complete(buf)
        if self.body_length is None:
            return True
        # a body over the limit is the app's to refuse (413) without reading it
        return self.body_length > self.max_body or (
            len(buf) - self.head_end >= self.body_length)

    def _read_head(self, head: bytes) -> bool:
        """Learn the body framing; False when the head is not understood."""
        lengths = []
        lines = head.split(b"\r\n")
        http11 = lines[0].endswith(b" HTTP/1.1")
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                return False
            name = name.strip().lower()
            if name == b"expect":
                self.expects_continue = http11 and value.strip().lower() == b"100-continue"
            elif name == b"transfer-encoding":
                self.chunked = self.chunked or b"chunked" in value.lower()
            elif name == b"content-length":
                lengths.append(value.strip())
        if self.chunked:
            return not lengths
        if lengths:
            if len(set(lengths)) != 1 or not _CONTENT_LENGTH.fullmatch(lengths[0]):
                return False
            self.body_length = int(lengths[0])
        return True

    def _chunks_complete(self, buf: bytearray) -> bool:
        while True:
            line_end = buf.find(b"\r\n", self.position)
            if line_end < 0:
                return len(buf) - self.position > _CHUNK_LINE_LIMIT
            size_text = bytes(buf[self.position:line_end]).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                return True
            size = int(size_text, 16)
            if size == 0:
                trailer = line_end + 2
                if buf[trailer:trailer + 2] == b"\r\n":
                    return True
                return buf.find(_HEAD_END, trailer - 2) >= 0 or (
                    len(buf) - trailer > self.head_limit)
            chunk_end = line_end + 2 + size + 2
            if len(buf) < chunk_end:
                return self.decoded + len(buf) - line_end - 2 > self.max_body
            self.decoded += size
            if self.decoded > self.max_body:
                return True
            self.position = chunk_end


class _BoundedSSLSocket(ssl.SSLSocket):
    """An SSL socket whose "blocking" mode has a timeout.

    Gunicorn's request handler puts the socket in blocking mode before it
    writes the response; here that means "at most ``io_timeout`` per
    operation", so a client that stops reading cannot hold the thread.
    """

    io_timeout: float

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(self.io_timeout)
        else:
            super().setblocking(False)


class AgentConnection(TConn):  # type: ignore[misc]
    """A client connection and where it is in handshake and request read."""

    def __init__(self, worker: BoundedThreadWorker, client_sock: socket.socket,
                 client: Any, server: Any) -> None:
        super().__init__(worker.cfg, client_sock, client, server)
        self.buf = bytearray()
        self.scanner = RequestScanner(worker.max_body_size, worker.head_limit)
        self.handshaken = not worker.cfg.is_ssl
        self.deadline = time.monotonic() + worker.handshake_timeout
        self.request_started: float | None = None
        self.events = 0  # what the poller watches for, 0 when not registered
        self.lingering = False  # refused: draining what the client still sends
        self.continued = False  # "100 Continue" sent for the request being read


class BoundedThreadWorker(ThreadWorker):  # type: ignore[misc]
    """See the module docstring; configured by :func:`worker_class`."""

    handshake_timeout: float = 10.0
    request_timeout: float = 180.0
    max_body_size: int = 16 * 1024 * 1024

    def init_process(self) -> None:
        self.preparing: set[AgentConnection] = set()
        cfg = self.cfg
        self.head_limit = max(64 * 1024, cfg.limit_request_line + 4
                              + (cfg.limit_request_field_size + 2) * (cfg.limit_request_fields + 1))
        super().init_process()

    # -- accepting and reading, in the event loop ---------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        conn = AgentConnection(self, client_sock, client_addr, listener.getsockname())
        if self.cfg.is_ssl:
            try:
                conn.sock = sock.ssl_context(self.cfg).wrap_socket(
                    client_sock, server_side=True, do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
                conn.sock.__class__ = _BoundedSSLSocket  # same layout, one method more
                conn.sock.io_timeout = self.handshake_timeout
                conn.sock.setblocking(False)  # the context may have set a timeout
            except (OSError, ValueError) as exc:
                self.log.debug("cannot wrap a new connection: %s", exc)
                self._drop(conn)
                return
        self.preparing.add(conn)
        self._advance(conn)

    def enqueue_req(self, conn: AgentConnection) -> None:
        """Every way to the pool (new, kept-alive, pipelined) reads first."""
        conn.sock.setblocking(False)
        if conn.parser is not None:
            conn.buf[:0] = conn.parser.unreader.take_buffered()
        conn.scanner.reset()
        conn.continued = False
        conn.request_started = time.monotonic() if conn.buf else None
        conn.deadline = time.monotonic() + self.handshake_timeout
        self.preparing.add(conn)
        self._advance(conn)

    def _advance(self, conn: AgentConnection, _fileobj: object = None) -> None:
        try:
            if not conn.handshaken:
                conn.sock.do_handshake()
                conn.handshaken = True
                conn.deadline = time.monotonic() + self.handshake_timeout
            if conn.buf and self._scanned(conn):
                return
            while True:
                data = conn.sock.recv(_RECV)
                if not data:
                    self._drop(conn)  # closed by the client
                    return
                now = time.monotonic()
                if conn.request_started is None:
                    conn.request_started = now
                conn.buf += data
                if self._scanned(conn):
                    return
                if conn.scanner.head_end is not None:
                    # a body: keep it coming, within the request's total time
                    conn.deadline = min(now + self.handshake_timeout,
                                        conn.request_started + self.request_timeout)
        except (ssl.SSLWantReadError, BlockingIOError):
            self._watch(conn, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            self._watch(conn, selectors.EVENT_WRITE)
        except ssl.SSLError as exc:
            self.log.debug("TLS error from %s: %s", conn.client, exc)
            self._linger(conn)
        except (OSError, ValueError) as exc:
            self.log.debug("dropping connection from %s: %s", conn.client, exc)
            self._drop(conn)

    def _linger(self, conn: AgentConnection) -> None:
        """Close after a refused handshake without losing the alert we sent.

        The client may already be sending its request (TLS 1.3 clients
        finish first); closing with those bytes unread would reset the
        connection and the client would never see why it was refused. So
        stop writing, read and discard until the client closes, briefly.
        """
        try:
            conn.sock.shutdown(socket.SHUT_WR)  # also forgets the TLS state
        except OSError:
            self._drop(conn)
            return
        conn.deadline = min(conn.deadline, time.monotonic() + LINGER)
        if conn.events:  # watched again below, by the drain
            self.poller.unregister(conn.sock)
            conn.events = 0
        conn.lingering = True
        self._drain(conn)

    def _drain(self, conn: AgentConnection, _fileobj: object = None) -> None:
        try:
            while conn.sock.recv(_RECV):
                pass
        except BlockingIOError:
            self._watch(conn, selectors.EVENT_READ)
            return
        except OSError:
            pass
        self._drop(conn)

    def _scanned(self, conn: AgentConnection) -> bool:
        """Dispatch the request if it is complete; True if it was."""
        if conn.scanner.complete(conn.buf):
            self._dispatch(conn)
            return True
        if conn.scanner.head_end is not None and conn.scanner.expects_continue \
                and not conn.continued:
            self._continue(conn)
        return False

    def _continue(self, conn: AgentConnection) -> None:
        """The client waits for "100 Continue" before its body: the body is
        read here, so the answer goes from here (once; see handle_request)."""
        conn.continued = True
        try:
            conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            pass  # the client sends its body anyway after its own short wait

    def handle_request(self, req: Any, conn: AgentConnection) -> bool:
        if getattr(conn, "continued", False):
            req._expected_100_continue = False  # already answered by _continue
        return bool(super().handle_request(req, conn))

    def _watch(self, conn: AgentConnection, events: int) -> None:
        if conn.events == events:
            return
        step = self._drain if conn.lingering else self._advance
        callback = lambda fileobj, c=conn: step(c, fileobj)  # noqa: E731
        if conn.events:
            self.poller.modify(conn.sock, events, callback)
        else:
            self.poller.register(conn.sock, events, callback)
        conn.events = events

    def _unwatch(self, conn: AgentConnection) -> None:
        self.preparing.discard(conn)
        if conn.events:
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            conn.events = 0

    def _drop(self, conn: AgentConnection) -> None:
        self._unwatch(conn)
        self.nr_conns -= 1
        conn.close()

    def _dispatch(self, conn: AgentConnection) -> None:
        """A complete request is buffered: a pool thread serves it."""
        self._unwatch(conn)
        if not conn.initialized:
            conn.initialized = True
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(conn.buf))
        conn.buf.clear()
        conn.data_ready = True
        super().enqueue_req(conn)

    def murder_pending(self) -> None:
        """Also close connections past their handshake or request deadline."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self.preparing if c.deadline <= now]:
            self.log.debug("closing %s: handshake or request not complete in time",
                           conn.client)
            self._drop(conn)


def worker_class(*, handshake_timeout: float, request_timeout: float,
                 max_body_size: int) -> type[BoundedThreadWorker]:
    """The worker class with the agent's limits (gunicorn instantiates it)."""
    return type("AgentWorker", (BoundedThreadWorker,), {
        "handshake_timeout": float(handshake_timeout),
        "request_timeout": float(request_timeout),
        "max_body_size": int(max_body_size),
    })
