from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from controller_stub.local_agent import Pki, RunningAgent, short_tmpdir, start_agent
from tests.support import namespaces


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def lb_namespace() -> Iterator[str]:
    with namespaces.namespace() as name:
        yield name


@pytest.fixture
def agent(pki: Pki, lb_namespace: str) -> Iterator[RunningAgent]:
    """A real agent whose HAProxy namespace is ``lb_namespace``."""
    root = short_tmpdir()
    running = start_agent(root, pki, amphora={"namespace": lb_namespace})
    yield running
    running.process.stop()
    shutil.rmtree(root, ignore_errors=True)
