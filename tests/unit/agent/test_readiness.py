"""sd_notify datagrams and the serving watch, against real sockets and a real thread pool."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from amphora_agent import readiness


def _app(status: str = "404 NOT FOUND"):
    def app(_environ, start_response):
        start_response(status, [("Content-Type", "application/json")])
        return [b"{}"]
    return app


def test_notify_is_a_no_op_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert readiness.notify("READY=1") is False


def test_notify_sends_to_a_path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert readiness.notify("READY=1") is True
        assert sock.recv(4096) == b"READY=1"


def test_notify_sends_to_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"amphora-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert readiness.notify("WATCHDOG=1") is True
        assert sock.recv(4096) == b"WATCHDOG=1"


@pytest.mark.parametrize(("usec", "expected"), [("3000000", 1.0), ("0", None), ("", None),
                                                 ("12x", None), ("\uff11\uff12", None)])
def test_watchdog_interval_is_a_third_of_watchdog_usec(
        monkeypatch: pytest.MonkeyPatch, usec: str, expected: float | None) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    assert readiness.watchdog_interval() == expected


def test_probe_runs_a_request_through_the_app() -> None:
    seen: list[dict] = []

    def app(environ, start_response):
        seen.append(environ)
        return _app()(environ, start_response)

    assert readiness.probe(app) == 404
    assert seen[0]["PATH_INFO"] == "/" and seen[0][readiness.PROBE_ENVIRON_KEY] is True


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=True)


def test_watch_sends_ready_once_then_watchdog(pool: ThreadPoolExecutor) -> None:
    sent: list[str] = []
    watch = readiness.ServingWatch(_app(), pool, 1.0, send=lambda s: sent.append(s) or True)
    watch.tick()
    watch.tick()
    assert sent[0].startswith("READY=1\nMAINPID=")
    assert sent[1:] == ["WATCHDOG=1", "WATCHDOG=1"]


def test_watch_starves_the_watchdog_while_every_pool_thread_is_busy(
        pool: ThreadPoolExecutor) -> None:
    release = threading.Event()
    for _ in range(2):  # both request threads stuck, as with a wedged worker
        pool.submit(release.wait, 30)
    sent: list[str] = []
    watch = readiness.ServingWatch(_app(), pool, 0.2, send=lambda s: sent.append(s) or True)
    watch.tick()
    watch.tick()
    assert sent == []
    release.set()
    deadline = time.monotonic() + 10  # the freed threads answer the pending probe
    while not sent and time.monotonic() < deadline:
        watch.tick()
    assert sent[-1] == "WATCHDOG=1" and sent[0].startswith("READY=1")


def test_watch_does_not_feed_the_watchdog_on_a_server_error(pool: ThreadPoolExecutor) -> None:
    sent: list[str] = []
    watch = readiness.ServingWatch(_app("500 INTERNAL SERVER ERROR"), pool, 1.0,
                                   send=lambda s: sent.append(s) or True)
    watch.tick()
    assert sent == []
