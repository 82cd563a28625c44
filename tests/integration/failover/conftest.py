"""An ACTIVE_STANDBY fabric: members and a client, pairs built per test and
deleted after it (also on failure); the fabric goes at the end of the module."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from controller_stub.active_standby import Pair, build_pair
from controller_stub.compute.local import Endpoint, LocalFabric
from tests.integration.network.conftest import fabric, no_leftovers  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def members(fabric: LocalFabric) -> list[Endpoint]:  # noqa: F811 - the fixture above
    return [fabric.create_member("member", name=f"member-{i}") for i in (1, 2)]


@pytest.fixture(scope="module")
def user(fabric: LocalFabric) -> Endpoint:  # noqa: F811
    return fabric.create_client("client")


@pytest.fixture
def make_pair(fabric: LocalFabric,  # noqa: F811
              members: list[Endpoint]) -> Iterator[Callable[..., Pair]]:
    pairs: list[Pair] = []

    def make(**kwargs: object) -> Pair:
        pair = build_pair(fabric, members, **kwargs)  # type: ignore[arg-type]
        pairs.append(pair)
        return pair

    yield make
    for pair in pairs:
        pair.delete()
