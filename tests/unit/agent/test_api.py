"""The agent's HTTP surface through Flask's test client (no TLS here; the
integration tier covers the same app under gunicorn)."""

from __future__ import annotations

import configparser
import hashlib
import os
import uuid
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.exceptions import MethodNotAllowed, NotFound

from amphora_agent.app import create_app
from amphora_agent.config import AgentConfig
from amphora_agent.services import DirectServiceManager
from controller_stub.pki import CertificateAuthority
from tests.unit.agent.conftest import with_limit

LB = str(uuid.uuid4())
PEM = (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def _project_version() -> str:
    parser = configparser.ConfigParser()
    parser.read(Path(__file__).resolve().parents[3] / "setup.cfg")
    return parser["metadata"]["version"]


def test_root_info_details(client: FlaskClient, agent_config: AgentConfig) -> None:
    root = client.get("/")
    assert root.status_code == 200 and root.json["api_version"] == "1.0"
    info = client.get("/1.0/info").json
    assert set(info) >= {"hostname", "haproxy_version", "api_version", "keepalived_version",
                         "ipvsadm_version"}
    assert info["agent_version"] == _project_version()
    details = client.get("/1.0/details").json
    assert details["amphora_id"] == agent_config.amphora_id
    assert details["haproxy_count"] == 0 and details["listeners"] == []
    assert details["memory"]["total"] > 0 and details["cpu_count"] >= 1
    assert details["open_file_limit"]["hard"] >= details["open_file_limit"]["soft"] > 0
    assert len(details["load"]) == 3


def test_routing_errors_are_json(client: FlaskClient) -> None:
    missing = client.get("/1.0/nothing-here")
    assert missing.status_code == 404 and missing.is_json
    assert missing.json == {"error": NotFound.description, "http_code": 404}
    wrong = client.post("/1.0/info")
    assert wrong.status_code == 405 and wrong.is_json
    assert wrong.json == {"error": MethodNotAllowed.description, "http_code": 405}


def test_certificate_lifecycle(client: FlaskClient, agent_config: AgentConfig) -> None:
    url = f"/1.0/loadbalancer/{LB}/certificates/server.pem"
    put = client.put(url, data=PEM)
    assert put.status_code == 200 and put.json == {"message": "OK"}
    md5 = hashlib.md5(PEM).hexdigest()
    assert put.headers["ETag"] == md5
    stored = Path(agent_config.base_cert_dir) / LB / "server.pem"
    assert stored.read_bytes() == PEM
    assert stored.stat().st_mode & 0o777 == 0o600
    assert client.get(url).json == {"md5sum": md5}
    assert client.delete(url).json == {"message": "OK"}
    assert not stored.exists()
    assert client.delete(url).status_code == 200  # idempotent
    gone = client.get(url)
    assert gone.status_code == 404 and gone.json["message"] == "Certificate Not Found"


@pytest.mark.parametrize("path", [
    "/1.0/loadbalancer/../certificates/x.pem",
    "/1.0/loadbalancer/not-a-uuid/certificates/x.pem",
    f"/1.0/loadbalancer/{{{LB}}}/certificates/x.pem",
    f"/1.0/loadbalancer/{LB}/certificates/x.pem.sh",
    f"/1.0/loadbalancer/{LB}/certificates/../x.pem",
    f"/1.0/loadbalancer/{LB}/certificates/..%2F..%2Fx.pem",
    f"/1.0/loadbalancer/{LB}/certificates/.hidden.pem",
    f"/1.0/loadbalancer/{LB}/certificates/a b.pem",
])
def test_bad_ids_and_filenames_are_400_and_write_nothing(
        client: FlaskClient, agent_config: AgentConfig, tmp_path: Path, path: str) -> None:
    before = _files_under(tmp_path)
    for method in ("put", "get", "delete"):
        response = getattr(client, method)(path, data=PEM)
        assert response.status_code == 400, (method, path, response.json)
        assert response.json["message"] == "Invalid request"
    assert _files_under(tmp_path) == before


def test_non_pem_body_is_rejected(client: FlaskClient, agent_config: AgentConfig) -> None:
    response = client.put(f"/1.0/loadbalancer/{LB}/certificates/x.pem", data=b"\x00\xffjunk")
    assert response.status_code == 400
    assert not (Path(agent_config.base_cert_dir) / LB).exists()


def test_body_over_limit_is_413(agent_config: AgentConfig, tmp_path: Path) -> None:
    app = create_app(with_limit(agent_config, 4096),
                     services=DirectServiceManager(str(tmp_path / "svc")))
    client = app.test_client()
    response = client.put(f"/1.0/loadbalancer/{LB}/certificates/big.pem",
                          data=PEM + b"x" * 5000)
    assert response.status_code == 413 and response.json["http_code"] == 413
    assert not (Path(agent_config.base_cert_dir) / LB / "big.pem").exists()


def test_put_config_validates_before_replacing(client: FlaskClient,
                                               agent_config: AgentConfig) -> None:
    original = Path(agent_config.config_file).read_text()
    bad = original.replace("heartbeat_interval = 10", "heartbeat_interval = often")
    response = client.put("/1.0/config", data=bad.encode())
    assert response.status_code == 400
    assert "heartbeat_interval" in response.json["details"]
    assert Path(agent_config.config_file).read_text() == original
    good = original.replace("heartbeat_interval = 10", "heartbeat_interval = 3")
    response = client.put("/1.0/config", data=good.encode())
    assert response.status_code == 202 and response.json == {"message": "OK"}
    assert Path(agent_config.config_file).read_text() == good
    assert os.stat(agent_config.config_file).st_mode & 0o777 == 0o600


def test_rotate_certificate_rejects_bad_pems(client: FlaskClient, agent_config: AgentConfig,
                                             ca: CertificateAuthority) -> None:
    import datetime

    cert_path = Path(agent_config.agent_server_cert)
    original = cert_path.read_bytes()
    good = ca.issue_amphora(agent_config.amphora_id)
    other = ca.issue_amphora(agent_config.amphora_id)
    expired = ca.issue_amphora(agent_config.amphora_id, days=1, not_before=datetime.datetime(
        2020, 1, 1, tzinfo=datetime.UTC))
    cases = {
        b"not a pem": "no parsable PEM certificate",
        good.cert_pem: "no unencrypted PEM private key",
        good.cert_pem + other.key_pem: "does not match",
        expired.pem: "expired",
    }
    for body, reason in cases.items():
        response = client.put("/1.0/certificate", data=body)
        assert response.status_code == 400, reason
        assert reason in response.json["details"]
        assert cert_path.read_bytes() == original
    response = client.put("/1.0/certificate", data=good.pem)
    assert response.status_code == 202
    assert cert_path.read_bytes() == good.pem


def test_config_with_non_utf8_bytes_is_a_clean_400(client: FlaskClient,
                                                   agent_config: AgentConfig) -> None:
    amp, lb = str(uuid.uuid4()), str(uuid.uuid4())
    response = client.put(f"/1.0/loadbalancer/{amp}/{lb}/haproxy",
                          data=b"global\n    \x89\xffnonsense\n")
    assert response.status_code == 400
    assert response.json["message"] == "Invalid request"
    assert "nonsense" in response.json["details"]
    assert not (Path(agent_config.base_path) / lb).exists()
