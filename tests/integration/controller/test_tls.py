"""TERMINATED_HTTPS through the controller: the certificates a listener names are
resolved from the certificate store and pushed before the config, so HAProxy
serves TLS (default certificate and SNI) on the fabric."""

from __future__ import annotations

import json
import socket
import ssl
import stat
import time
from pathlib import Path

from controller_stub.compute import nsutil
from controller_stub.pki import CertificateAuthority
from haproxy_templates.model import cert_filename
from tests.integration.controller.conftest import Site


def _https(site: Site, vip: str, server_name: str, ca_pem: bytes) -> tuple[str, str]:
    """One HTTPS request through the VIP from the client: (certificate CN, member)."""
    def fetch() -> tuple[str, str]:
        context = ssl.create_default_context(cadata=ca_pem.decode())
        with socket.create_connection((vip, 443), timeout=3) as raw, \
                context.wrap_socket(raw, server_hostname=server_name) as tls:
            subject = dict(item[0] for item in tls.getpeercert()["subject"])
            tls.sendall(f"GET / HTTP/1.0\r\nHost: {server_name}\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        body = data.split(b"\r\n\r\n", 1)[1]
        return subject["commonName"], json.loads(body)["member"]
    return nsutil.run_in(site.client.namespace, fetch)


def _poll_https(site: Site, vip: str, server_name: str, ca_pem: bytes,
                timeout: float = 15.0) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _https(site, vip, server_name, ca_pem)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_terminated_https_serves_pushed_certificates(site: Site, tmp_path: Path) -> None:
    m1, _ = site.members
    ca = CertificateAuthority.create("Listener CA")
    with site.service(f"sqlite:///{tmp_path}/state.db") as service:
        api, store = service.api, service.certificates
        default_ref = store.add(ca.issue_server("www.example.test").pem)
        sni_ref = store.add(ca.issue_server("api.example.test").pem)
        lb = api.create_load_balancer(name="tls", listeners=[{
            "protocol": "TERMINATED_HTTPS", "protocol_port": 443,
            "default_tls_container_ref": default_ref, "sni_container_refs": [sni_ref],
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": str(m1.ipv4), "protocol_port": 80}]}}])
        lb = api.wait(lb["id"], timeout=60)
        assert lb["provisioning_status"] == "ACTIVE", lb.get("status_reason")
        vip = lb["vip_address"]

        assert _poll_https(site, vip, "www.example.test", ca.cert_pem) == (
            "www.example.test", "m1")
        assert _https(site, vip, "api.example.test", ca.cert_pem) == ("api.example.test", "m1")

        (amphora,) = api.amphorae(lb["id"])
        certs = Path(amphora["compute_data"]["root"]) / "lib" / "certs" / lb["id"]
        for ref in (default_ref, sni_ref):
            path = certs / cert_filename(ref)
            assert path.read_bytes() == store.get(ref)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600

        api.delete_load_balancer(lb["id"], cascade=True)
        api.wait_deleted(lb["id"])


def test_unknown_certificate_fails_create_with_reason(site: Site, tmp_path: Path) -> None:
    m1, _ = site.members
    with site.service(f"sqlite:///{tmp_path}/state.db", attempts=1) as service:
        api = service.api
        missing = "local://certificates/" + "0" * 32
        lb = api.create_load_balancer(name="tls", listeners=[{
            "protocol": "TERMINATED_HTTPS", "protocol_port": 443,
            "default_tls_container_ref": missing,
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": str(m1.ipv4), "protocol_port": 80}]}}])
        lb = api.wait(lb["id"], timeout=60)
        assert lb["provisioning_status"] == "ERROR"
        assert lb["status_reason"].startswith("push_config: CertificateNotFound")
        api.delete_load_balancer(lb["id"], cascade=True)
        api.wait_deleted(lb["id"])
