from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from amphora_agent.app import create_app
from amphora_agent.config import AgentConfig
from amphora_agent.services import DirectServiceManager
from controller_stub.pki import CertificateAuthority
from controller_stub.provision import AgentSettings, write_amphora_files


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


@pytest.fixture
def agent_config(tmp_path: Path, ca: CertificateAuthority) -> AgentConfig:
    from amphora_agent import config as agent_config

    settings = AgentSettings(amphora_id=str(uuid.uuid4()), bind_host="127.0.0.1",
                             amphora={"namespace": "unit-test-ns"})
    config_file = write_amphora_files(tmp_path / "amp", settings, ca, ca.cert_pem)
    return agent_config.load(config_file)


@pytest.fixture
def app(agent_config: AgentConfig, tmp_path: Path) -> Flask:
    return create_app(agent_config, services=DirectServiceManager(str(tmp_path / "svc")))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def with_limit(config: AgentConfig, limit: int) -> AgentConfig:
    return dataclasses.replace(config, max_body_size=limit)
