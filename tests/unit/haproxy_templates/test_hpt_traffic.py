"""A rendered TERMINATED_HTTPS listener serves real TLS 1.2 and 1.3 traffic.

HAProxy runs on 127.0.0.1 on a free high port (loopback only) in front of an
in-process HTTP member; ``openssl s_client`` is the client. Every process is
stopped in a finalizer, also when an assertion fails.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hpt_cases import AMP_A, LB_ID, listener, pool, uid
from hpt_haproxy import HAPROXY
from hpt_pki import PKI

from controller_stub.local_agent import free_port
from haproxy_templates import RenderOptions, Target, peer_name, render


class _Member(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"member-ok proto={self.headers.get('X-Forwarded-Proto')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def member_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Member)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def running_lb(tmp_path: Path, pki: PKI, member_port: int, haproxy_bin) -> Iterator[dict]:
    port = free_port()
    doc = {
        "id": LB_ID, "vip_address": "127.0.0.1", "amphorae": [{"id": AMP_A}],
        "listeners": [listener(1, "TERMINATED_HTTPS", port, 11,
                               default_tls_container_ref="default.pem",
                               sni_container_refs=["sni1.pem", "sni2.pem"],
                               insert_headers={"X-Forwarded-Proto": "true"})],
        "pools": [pool(11, members=[{"id": uid(5), "address": "127.0.0.1",
                                     "protocol_port": member_port}])],
    }
    base = Path(tempfile.mkdtemp(prefix="hpt", dir="/tmp"))
    (base / LB_ID).mkdir()
    pki.install(tmp_path / "certs", LB_ID)
    # This machine's real limits: HAProxy refuses to start if maxconn needs more fds
    # than RLIMIT_NOFILE allows, which is what the renderer's clamp prevents.
    text = render(doc, amphora_id=AMP_A, target=Target.detect(),
                  options=RenderOptions(base_path=str(base), cert_dir=str(tmp_path / "certs"),
                                        log_target="127.0.0.1:1"))
    cfg = base / LB_ID / "haproxy.cfg"
    cfg.write_text(text)
    (tmp_path / "ca.pem").write_bytes(pki.ca.cert_pem())
    proc = subprocess.Popen([HAPROXY, "-f", str(cfg), "-L", peer_name(AMP_A), "-db"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    pytest.fail(f"haproxy did not start:\n{out}\n{text}")
                time.sleep(0.05)
        yield {"port": port, "ca": tmp_path / "ca.pem"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own process group (master + worker)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()
        shutil.rmtree(base, ignore_errors=True)


def _s_client(lb: dict, version_flag: str, servername: str) -> str:
    request = f"GET / HTTP/1.1\r\nHost: {servername}\r\nConnection: close\r\n\r\n"
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{lb['port']}", version_flag,
         "-servername", servername, "-CAfile", str(lb["ca"]), "-verify_return_error",
         "-ign_eof"],
        input=request, capture_output=True, text=True, timeout=30, check=False)
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(("flag", "protocol"), [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_terminated_https_serves_tls(running_lb: dict, flag: str, protocol: str) -> None:
    out = _s_client(running_lb, flag, "www.example.com")
    assert f"New, {protocol}, Cipher is" in out
    assert "Verify return code: 0 (ok)" in out
    assert re.search(r"HTTP/1\.[01] 200 ", out) and "member-ok proto=https" in out


def test_sni_selects_certificate(running_lb: dict) -> None:
    out = _s_client(running_lb, "-tls1_3", "sni2.example.com")
    assert "CN = sni2.example.com" in out
    out = _s_client(running_lb, "-tls1_3", "unknown.example.com")
    assert "CN = www.example.com" in out  # the default certificate


def test_tls_1_1_is_refused(running_lb: dict) -> None:
    # The refusal must be HAProxy's protocol_version alert (70), not any failure
    # (a client that never reached HAProxy would pass the checks below too).
    out = _s_client(running_lb, "-tls1_1", "www.example.com")
    assert "alert protocol version" in out and "alert number 70" in out, out
    assert "New, TLSv1.1" not in out and "member-ok" not in out
