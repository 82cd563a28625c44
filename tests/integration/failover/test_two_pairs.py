"""Embedded mode is honest: two ACTIVE_STANDBY pairs on one host share a
process table; killing one pair's master HAProxy moves that pair's VIP only."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller_stub.active_standby import Pair

pytestmark = pytest.mark.root


def test_killing_one_pairs_haproxy_moves_only_its_vip(make_pair: Callable[..., Pair]) -> None:
    first = make_pair(virtual_router_id=1)
    second = make_pair(virtual_router_id=2)
    assert first.holders() == [0] and second.holders() == [0]
    first.kill_haproxy(0)
    assert first.wait(lambda: first.holders() == [1], timeout=5.0) is not None
    # Ten advert intervals after the first pair moved, the second has not.
    assert second.wait(lambda: second.holders() != [0], timeout=1.0) is None
