"""Tell systemd the agent serves (``READY=1``) and keeps serving (``WATCHDOG=1``).

The sd_notify protocol is one AF_UNIX datagram to ``$NOTIFY_SOCKET`` (a
leading ``@`` names an abstract socket); without the variable every call is a
no-op, so the agent runs the same outside systemd. Both messages come from a
small thread in the gunicorn worker (started by gunicorn's
``post_worker_init`` hook, amphora_agent/server.py): it submits a cheap
request to the worker's own thread pool and notifies only when that request
was answered in time. A worker that is wedged (deadlocked, stopped, every
thread stuck) therefore stops feeding the watchdog and systemd restarts the
agent (``WatchdogSec=`` in amphora-agent.service).
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

LOG = logging.getLogger(__name__)
# WSGI environ key of the probe request; HTTP headers can only produce HTTP_* keys.
PROBE_ENVIRON_KEY = "amphora.readiness_probe"
PROBE_PATH = "/"
DEFAULT_PROBE_INTERVAL = 5.0

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def notify(state: str) -> bool:
    """Send one sd_notify message; False when not under systemd or it failed."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        LOG.warning("ignoring NOTIFY_SOCKET that is neither a path nor abstract")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        LOG.warning("sd_notify failed: %s", exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """A third of systemd's ``WATCHDOG_USEC``; None when the watchdog is off.

    A tick waits up to one interval for its probe and starts one interval
    after the previous tick, so two ``WATCHDOG=1`` are never more than two
    thirds of the timeout apart while the worker serves.
    """
    raw = os.environ.get("WATCHDOG_USEC", "")
    if not raw.isascii() or not raw.isdigit() or int(raw) == 0:
        return None
    return int(raw) / 3e6


def probe_environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": PROBE_PATH,
        "QUERY_STRING": "", "SERVER_NAME": "localhost", "SERVER_PORT": "0",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False, PROBE_ENVIRON_KEY: True,
    }


def probe(app: WsgiApp) -> int:
    """Run one request through the WSGI app; returns the HTTP status code."""
    status: list[str] = []

    def start_response(line: str, _headers: object, _exc_info: object = None) -> None:
        status.append(line)

    body = app(probe_environ(), start_response)
    try:
        for _chunk in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return int(status[0].split()[0])


class ServingWatch:
    """Probes the worker's request path and reports to systemd while it serves."""

    def __init__(self, app: WsgiApp, pool: Executor | None, interval: float,
                 send: Callable[[str], bool] = notify,
                 booted: Callable[[], bool] = lambda: True) -> None:
        self.app = app
        self.booted = booted
        self.pool = pool
        self.interval = interval
        self.send = send
        self.ready_sent = False
        self._stop = threading.Event()
        self._pending: Future[int] | None = None

    def check(self) -> bool:
        """One probe: True when the app answered (status < 500) within the interval."""
        if self._pending is None or self._pending.done():
            if self.pool is None:
                self._pending = Future()
                self._pending.set_result(probe(self.app))
            else:
                self._pending = self.pool.submit(probe, self.app)
        try:
            status = self._pending.result(timeout=self.interval)
        except FutureTimeout:
            LOG.warning("request probe not answered within %.1fs: not feeding the watchdog",
                        self.interval)
            return False
        except Exception:
            LOG.exception("request probe failed")
            return False
        return status < 500

    def tick(self) -> None:
        if not self.check():
            return
        if not self.ready_sent:
            self.ready_sent = self.send(f"READY=1\nMAINPID={os.getppid()}\nSTATUS=serving")
        self.send("WATCHDOG=1")

    def run(self) -> None:
        # post_worker_init runs just before the worker enters its accept loop.
        while not self._stop.is_set() and not self.booted():
            self._stop.wait(0.05)
        while not self._stop.is_set():
            due = time.monotonic() + self.interval
            self.tick()
            self._stop.wait(max(0.0, due - time.monotonic()))

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="serving-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def watch_worker(worker: Any) -> ServingWatch | None:
    """gunicorn ``post_worker_init``: start the watch in this worker when under systemd."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return None
    interval = watchdog_interval() or DEFAULT_PROBE_INTERVAL
    pool = getattr(worker, "tpool", None)
    if pool is None:
        LOG.warning("worker %s has no thread pool: probing from the watch thread",
                    type(worker).__name__)
    watch = ServingWatch(worker.wsgi, pool, interval,
                         booted=lambda: bool(getattr(worker, "booted", True)))
    watch.start()
    return watch
