"""Split brain: keepalived SIGKILLed on the master releases nothing, so the
VIP would stay there while the backup raises it too. The agent's VRRP guard
(amphora_agent/vrrp/guard.py) removes it, and the master's agent stops
heartbeats (amphora_agent/health.py), so the VIP ends on exactly one amphora."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from controller_stub.active_standby import Pair

pytestmark = pytest.mark.root


def test_sigkilled_keepalived_leaves_the_vip_on_exactly_one_amphora(
        make_pair: Callable[..., Pair]) -> None:
    pair = make_pair()
    assert pair.holders() == [0]
    killed = time.monotonic()
    pair.kill_keepalived(0, signal.SIGKILL)
    assert pair.wait(lambda: not pair.holds_vip(0), timeout=5.0) is not None
    assert pair.wait(lambda: pair.holders() == [1], timeout=5.0) is not None
    print(f"VIP on exactly one amphora {time.monotonic() - killed:.3f}s after SIGKILL")
    # and it stays that way: nothing puts it back on the amphora without keepalived
    assert pair.wait(lambda: pair.holders() != [1], timeout=1.0) is None
