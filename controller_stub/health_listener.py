"""The controller's health listener: UDP heartbeats in, verified messages out.

One receive thread reads every bound socket (IPv4 and IPv6), verifies each
datagram (:class:`amphora_contract.heartbeat.HeartbeatVerifier`) and hands the
messages of each drained burst at once to one delivery thread, which calls
the callback: one lock and one wake-up per burst, not per datagram. At most
``queue_size`` messages wait or are being delivered; past that a message is
dropped and counted, so a slow consumer costs datagrams, never memory. Every
rejection is counted by its reason (docs/heartbeat.md).
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from amphora_contract.heartbeat import HeartbeatError, HeartbeatVerifier, RejectReason

LOG = logging.getLogger(__name__)

Message = dict[str, Any]
Callback = Callable[[Message, str], None]
QUEUE_FULL = "queue_full"
SO_RCVBUFFORCE = 33  # Linux (asm-generic/socket.h); the socket module does not name it
# Datagrams read (and verified) before their messages are handed on.
BURST = 64


class HealthListener:
    """Receives heartbeats on ``addresses`` (host, port) pairs; port 0 on the
    first picks a free port that the others then share. Start with
    :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    def __init__(self, verifier: HeartbeatVerifier, callback: Callback, *,
                 addresses: Iterable[tuple[str, int]], queue_size: int = 1024,
                 receive_buffer: int | None = None) -> None:
        self.verifier = verifier
        self._callback = callback
        self._addresses = list(addresses)
        self._receive_buffer = receive_buffer
        self._queue_size = queue_size
        # messages handed over, and how many are handed over but not yet delivered
        self._pending: list[tuple[Message, str]] = []
        self._in_flight = 0
        self._ready = threading.Condition()
        self._counts: Counter[str] = Counter()
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._threads: list[threading.Thread] = []

    # lifecycle

    def start(self) -> HealthListener:
        try:
            self._bind()
        except OSError:
            self._close()
            raise
        self._threads = [
            threading.Thread(target=self._receive_loop, name="health-receive", daemon=True),
            threading.Thread(target=self._deliver_loop, name="health-deliver", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def _bind(self) -> None:
        port = 0
        for host, wanted in self._addresses:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            self._sockets.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, wanted or port))
            port = port or sock.getsockname()[1]
            sock.setblocking(False)
            if self._receive_buffer:
                self._set_receive_buffer(sock, self._receive_buffer)

    def _close(self) -> None:
        for sock in (*self._sockets, self._wake_r, self._wake_w):
            sock.close()

    @staticmethod
    def _set_receive_buffer(sock: socket.socket, size: int) -> None:
        """Past net.core.rmem_max when we may (CAP_NET_ADMIN), else up to it:
        bursts from many amphorae wait in the kernel, not in the drop count."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    def stop(self) -> None:
        """Stop both threads; a callback still running is waited for (5 s)."""
        self._stop.set()
        if not self._threads:  # never started
            self._close()
            return
        self._wake_w.send(b"x")
        receiver, deliverer = self._threads
        receiver.join(timeout=5)
        with self._ready:
            self._ready.notify()  # the delivery thread sees the stop flag
        deliverer.join(timeout=5)
        self._close()

    def __enter__(self) -> HealthListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The bound sockets (for socket options such as ``SO_MEMINFO``; the
        listener's receive thread reads them)."""
        return tuple(self._sockets)

    @property
    def bound(self) -> list[tuple[str, int]]:
        """(host, port) of each socket, as bound."""
        return [sock.getsockname()[:2] for sock in self._sockets]

    # counters

    def counters(self) -> dict[str, int]:
        """``received``, ``accepted``, ``queue_full`` and one count per
        :class:`RejectReason` value (zero included)."""
        counts = dict(self._counts)
        out = {name: counts.get(name, 0) for name in ("received", "accepted", QUEUE_FULL)}
        out.update({reason.value: counts.get(reason.value, 0) for reason in RejectReason})
        return out

    # the two threads

    def _verified(self, datagram: bytes) -> Message | None:
        counts = self._counts
        counts["received"] += 1
        try:
            return self.verifier.verify(datagram)
        except HeartbeatError as exc:
            counts[exc.reason.value] += 1
            return None

    def _hand_over(self, batch: list[tuple[Message, str]]) -> None:
        """Queue what fits of ``batch``; count the rest as dropped."""
        with self._ready:
            room = max(self._queue_size - self._in_flight, 0)
            if len(batch) > room:
                self._counts[QUEUE_FULL] += len(batch) - room
                batch = batch[:room]
            if batch:
                self._pending += batch
                self._in_flight += len(batch)
                self._counts["accepted"] += len(batch)
                self._ready.notify()

    def handle(self, datagram: bytes, source: str) -> None:
        """Verify one datagram and queue its message (the receive path)."""
        message = self._verified(datagram)
        if message is not None:
            self._hand_over([(message, source)])

    def _drain(self, sock: socket.socket, limit: int) -> bool:
        """Read and verify up to :data:`BURST` datagrams, hand their messages
        over together; True when the socket may hold more."""
        batch: list[tuple[Message, str]] = []
        recvfrom, verified = sock.recvfrom, self._verified
        for _ in range(BURST):
            try:
                datagram, source = recvfrom(limit)
            except BlockingIOError:
                break
            except OSError:
                LOG.exception("health socket receive failed")
                break
            message = verified(datagram)
            if message is not None:
                batch.append((message, source[0]))
        else:
            self._hand_over(batch)
            return True
        self._hand_over(batch)
        return False

    def _receive_loop(self) -> None:
        limit = self.verifier.max_datagram + 1  # one more: oversized shows as oversized
        with selectors.DefaultSelector() as selector:
            for sock in self._sockets:
                selector.register(sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select():
                    sock = key.fileobj
                    if sock is self._wake_r:
                        continue
                    while self._drain(sock, limit):  # type: ignore[arg-type]
                        pass  # one wake-up, many datagrams

    def _deliver_loop(self) -> None:
        ready = self._ready
        while True:
            with ready:
                while not self._pending and not self._stop.is_set():
                    ready.wait()
                if self._stop.is_set():
                    return
                batch, self._pending = self._pending, []
            for message, source in batch:
                if self._stop.is_set():
                    return
                try:
                    self._callback(message, source)
                except Exception:
                    LOG.exception("health callback failed for a heartbeat from %s", source)
            with ready:
                self._in_flight -= len(batch)
