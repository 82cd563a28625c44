from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller_stub.local_agent import Pki, RunningAgent, start_agent


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def shared_agent(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    """One agent for read-only checks in a module."""
    agent = start_agent(tmp_path_factory.mktemp("agent"), pki)
    yield agent
    agent.process.stop()


@pytest.fixture
def make_agent(pki: Pki, tmp_path: Path) -> Iterator:
    """A fresh agent per test, for tests that change its state."""
    started: list[RunningAgent] = []

    def make(**kwargs: object) -> RunningAgent:
        agent = start_agent(tmp_path / f"agent{len(started)}", pki, **kwargs)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.process.stop()
