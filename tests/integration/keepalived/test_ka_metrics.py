"""GET /1.0/ext/metrics reports this amphora's VRRP state, read through a real
agent running a real keepalived: MASTER holding the VIP shows 1, a stopped
keepalived shows -1 and ``amphora_keepalived_running`` 0."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from controller_stub.local_agent import RunningAgent
from tests.integration.keepalived.test_ka_agent_vrrp import (
    keepalived_pid,
    ours,
    start_haproxy,
    vip_present,
    wait_for,
)


def _samples(agent: RunningAgent, name: str) -> dict[str, float]:
    with agent.client() as client:
        text = client.metrics()
    return {s.labels.get("instance", ""): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}


def test_vrrp_state_follows_keepalived(agent: RunningAgent, lb_namespace: str) -> None:
    lb_id = str(uuid.uuid4())
    start_haproxy(agent, lb_id)
    instance = lb_id.replace("-", "")
    with agent.client() as client:
        client.upload_vrrp(ours(agent, lb_id, track_haproxy=None))
        client.vrrp_action("start")
    assert wait_for(lambda: vip_present(lb_namespace))
    assert wait_for(lambda: _samples(agent, "amphora_vrrp_state") == {instance: 1.0})
    assert _samples(agent, "amphora_keepalived_running") == {"": 1.0}

    with agent.client() as client:
        client.vrrp_action("stop")
    assert keepalived_pid(agent) is None
    assert _samples(agent, "amphora_keepalived_running") == {"": 0.0}
    assert _samples(agent, "amphora_vrrp_state") == {instance: -1.0}
