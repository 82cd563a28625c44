"""A load balancer end to end on the local fabric: rendered by
haproxy_templates from an Octavia-style document, pushed through the agent
API, serving a client namespace through the VIP to member namespaces."""

from __future__ import annotations

import collections
import subprocess
import threading
import uuid
from typing import Any

import pytest

from amphora_contract import agent_config
from controller_stub.client import BadRequest
from controller_stub.compute.local import LocalFabric
from controller_stub.loadbalancer import backend_name, http_document, render_for
from tests.e2e.conftest import Plugged
from tests.support.fabric import fetch

pytestmark = pytest.mark.root


def _document(plugged: Plugged, members: list[tuple[str, str]], *,
              listeners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    doc = http_document(amphora_id=plugged.amphora.id, vip=str(plugged.vip.ipv4),
                        additional_vips=[str(plugged.vip.ipv6)], members=members)
    if listeners:
        doc["listeners"] = listeners
    return doc


def _render(plugged: Plugged, doc: dict[str, Any]) -> str:
    config = agent_config.load(plugged.amphora.config_file)
    return render_for(plugged.client, doc, amphora_id=plugged.amphora.id,
                      base_path=config.base_path, cert_dir=config.base_cert_dir)


def _who(plugged: Plugged, vip: str, n: int = 12) -> collections.Counter[str]:
    return collections.Counter(fetch(plugged.user.namespace, vip)["member"] for _ in range(n))


def _wait_members(plugged: Plugged, vip: str, expected: set[str]) -> None:
    import time

    deadline = time.monotonic() + 15
    while (seen := set(_who(plugged, vip))) != expected:
        assert time.monotonic() < deadline, f"never served by exactly {expected}: {seen}"
        time.sleep(0.2)


def test_rendered_lb_serves_through_the_vip(fabric: LocalFabric, plugged: Plugged) -> None:
    second = fabric.create_member("member", name="member-2")
    try:
        members = [(str(uuid.uuid4()), str(plugged.member.ipv4)),
                   (str(uuid.uuid4()), str(second.ipv4))]
        doc = _document(plugged, members)
        lb_id, client = doc["id"], plugged.client
        config = _render(plugged, doc)
        client.upload_haproxy(plugged.amphora.id, lb_id, config)
        client.lb_action(lb_id, "start")
        for vip in (str(plugged.vip.ipv4), str(plugged.vip.ipv6)):
            _wait_members(plugged, vip, {"member-1", "member-2"})
        # the members see the amphora's member-network address
        assert fetch(plugged.user.namespace, str(plugged.vip.ipv4))["client"] == str(
            plugged.member_port.ipv4)

        # a bad config changes nothing, while traffic flows
        errors: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                try:
                    fetch(plugged.user.namespace, str(plugged.vip.ipv4))
                except Exception as exc:
                    errors.append(repr(exc))

        runner = threading.Thread(target=traffic)
        runner.start()
        try:
            with pytest.raises(BadRequest):
                client.upload_haproxy(plugged.amphora.id, lb_id,
                                      config.replace("balance roundrobin", "balance nowhere"))
            # a changed config: member-2 leaves the pool
            doc["pools"][0]["members"] = doc["pools"][0]["members"][:1]
            client.upload_haproxy(plugged.amphora.id, lb_id, _render(plugged, doc))
            client.lb_action(lb_id, "reload")
        finally:
            stop.set()
            runner.join()
        assert errors == []
        assert set(_who(plugged, str(plugged.vip.ipv4))) == {"member-1"}

        # and back at runtime, without a reload
        backend = backend_name(doc)
        applied = client.set_server(lb_id, backend, members[1][0], address=str(second.ipv4),
                                    port=80)
        assert applied == "runtime", plugged.amphora.process.log_tail()
        _wait_members(plugged, str(plugged.vip.ipv4), {"member-1", "member-2"})

        # the LB outlives an agent restart and is still reported
        fabric.restart_agent(plugged.amphora)
        with fabric.client(plugged.amphora) as fresh:
            assert fresh.listeners() == [{"status": "ACTIVE", "uuid": doc["listeners"][0]["id"],
                                          "type": "HTTP"}]
            _wait_members(plugged, str(plugged.vip.ipv4), {"member-1", "member-2"})
            fresh.lb_action(lb_id, "stop")
            assert fresh.details()["haproxy_count"] == 0
            fresh.delete_listener(lb_id)
            fresh.delete_listener(lb_id)
            assert fresh.listeners() == []
    finally:
        fabric.delete_endpoint(second)


def _s_client(plugged: Plugged, *args: str) -> tuple[bool, str]:
    vip = str(plugged.vip.ipv4)
    proc = subprocess.run(
        ["ip", "netns", "exec", plugged.user.namespace, "openssl", "s_client",
         "-connect", f"{vip}:443", "-servername", "lb.example.test", *args],
        input=b"Q\n", capture_output=True, timeout=20, check=False)
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    return proc.returncode == 0 and "Cipher is (NONE)" not in out and (
        "Verify return code: 0" in out), out


def test_terminated_https_negotiates_only_allowed_versions_and_suites(
        fabric: LocalFabric, plugged: Plugged, tmp_path) -> None:
    from controller_stub.pki import CertificateAuthority

    ca = CertificateAuthority.create("Tenant CA")
    ca_file = tmp_path / "tenant-ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    issued = ca.issue_server("lb.example.test")
    pool_id = str(uuid.uuid4())
    listener = {"id": str(uuid.uuid4()), "protocol": "TERMINATED_HTTPS", "protocol_port": 443,
                "default_pool_id": pool_id, "default_tls_container_ref": "lb.pem",
                "tls_versions": ["TLSv1.2", "TLSv1.3"],
                "tls_ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384",
                "tls_ciphersuites": "TLS_AES_256_GCM_SHA384"}
    doc = _document(plugged, [(str(uuid.uuid4()), str(plugged.member.ipv4))],
                    listeners=[listener])
    doc["pools"][0]["id"] = pool_id
    client = plugged.client
    client.upload_cert(doc["id"], "lb.pem", issued.pem)
    client.upload_haproxy(plugged.amphora.id, doc["id"], _render(plugged, doc))
    client.lb_action(doc["id"], "start")
    try:
        base = ["-CAfile", str(ca_file)]
        ok, out = _s_client(plugged, *base, "-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384")
        assert ok and "TLS_AES_256_GCM_SHA384" in out, out
        # A refusal is HAProxy's alert, not any failure (a dead listener fails too):
        # handshake_failure is alert 40, protocol_version alert 70.
        ok, out = _s_client(plugged, *base, "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256")
        assert not ok and "alert number 40" in out, out
        ok, out = _s_client(plugged, *base, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
        assert ok and "ECDHE-ECDSA-AES256-GCM-SHA384" in out, out
        ok, out = _s_client(plugged, *base, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert not ok and "alert number 40" in out, out
        ok, out = _s_client(plugged, *base, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
        assert not ok and "alert number 70" in out, out
    finally:
        client.delete_listener(doc["id"])
