"""ACTIVE_STANDBY on the local fabric: two amphorae, one VIP, real traffic.

Traffic reaches the members via the master; when the master's VIP and
management links go down it reaches them via the standby; when the old master
comes back, the preemption policy of keepalived/ (``nopreempt``: the VIP
stays where it is, docs/keepalived.md) holds and no request fails."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from controller_stub.active_standby import Pair, Prober
from controller_stub.compute.local import Endpoint

pytestmark = pytest.mark.root


@pytest.mark.parametrize("family", [4, 6])
def test_links_down_fails_over_and_the_old_master_stays_backup(
        make_pair: Callable[..., Pair], user: Endpoint, family: int) -> None:
    pair = make_pair(family=family)
    assert pair.holders() == [0]
    with Prober(user.namespace, pair.vip) as prober:
        start = time.monotonic()
        assert prober.wait_good(start)
        assert prober.failed(start) == 0

        pair.links_down(0)
        down = time.monotonic()
        assert pair.wait(lambda: pair.holds_vip(1)) is not None
        assert prober.wait_good(time.monotonic())  # served via the standby

        pair.links_up(0)
        back = time.monotonic()
        # The old master hears the new master's adverts again and stays backup.
        assert pair.wait(lambda: not pair.holds_vip(1), timeout=3.0) is None
        assert pair.holders() == [1]
        settled = time.monotonic()
    assert any(p.ok for p in prober.since(back))
    assert prober.failed(back) == 0, "the old master's return failed requests"
    print(f"IPv{family}: {prober.failed(down)} failed probes during the failover, "
          f"0 after the old master returned ({settled - back:.1f}s watched)")
