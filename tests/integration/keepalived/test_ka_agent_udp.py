"""UDP listeners (keepalived LVS virtual servers) through a real agent.

This kernel has no IPVS, so the test stops at what is real here: validation
with keepalived -t, install, read back, the keepalived process starting and
stopping, listing and deletion (docs/keepalived.md)."""

from __future__ import annotations

import stat
import time
import uuid
from pathlib import Path

import pytest

from controller_stub.client import BadRequest, InternalServerError, NotFound
from controller_stub.local_agent import RunningAgent
from tests.integration.keepalived.conftest import VIP


def lvs_config(agent: RunningAgent, ns: str, listener_id: str, extra: str = "") -> str:
    """Shaped like Octavia's keepalivedlvs template (net_namespace, group, NAT, UDP)."""
    return f"""# Configuration for Listener {listener_id}

net_namespace {ns}

virtual_server_group ipv4-group {{
    {VIP} 5353
}}

virtual_server group ipv4-group {{
    lb_algo rr
    lb_kind NAT
    protocol UDP
{extra}
    real_server 198.51.100.5 5353 {{
        weight 1
    }}
}}
"""


def wait_for(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_udp_listener_lifecycle(agent: RunningAgent, lb_namespace: str) -> None:
    listener_id = str(uuid.uuid4())
    text = lvs_config(agent, lb_namespace, listener_id)
    conf = agent.base_path / "lvs" / f"octavia-keepalivedlvs-{listener_id}.conf"
    pid_file = agent.base_path / "lvs" / f"amphora-lvs-{listener_id}.main.pid"
    with agent.client() as client:
        assert len(client.upload_udp_listener(agent.amphora_id, listener_id, text)) == 32
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        assert client.get_udp_listener(listener_id) == text
        assert {"status": "STOPPED", "uuid": listener_id, "type": "UDP"} in client.listeners()
        # keepalived starts, then its checker cannot initialise IPVS on this
        # kernel and it exits: the agent reports the start as failed.
        assert not Path("/proc/net/ip_vs").exists(), "this test documents a kernel without IPVS"
        with pytest.raises(InternalServerError) as err:
            client.lb_action(listener_id, "start")
        assert err.value.body["message"] == f"Failed to start UDP listener {listener_id}"
        assert not pid_file.exists() or not Path(
            f"/proc/{pid_file.read_text().split()[0]}").exists()
        assert {"status": "STOPPED", "uuid": listener_id, "type": "UDP"} in client.listeners()
        client.lb_action(listener_id, "stop")  # stopping a stopped listener is fine
        client.delete_listener(listener_id)
        assert not conf.exists()
        with pytest.raises(NotFound):
            client.get_udp_listener(listener_id)


@pytest.mark.parametrize(("extra", "expect"), [
    ('    real_server 198.51.100.6 53 {\n      MISC_CHECK {\n        misc_path "/bin/sh -c id"\n'
     '      }\n    }\n', "outside the agent's check-script"),
    ("    lb_algo bogus_algo\n", "bogus_algo"),
    ("    notify_up /tmp/x\n", "outside the agent's check-script"),
])
def test_invalid_udp_listener_is_refused(agent: RunningAgent, lb_namespace: str, extra: str,
                                         expect: str) -> None:
    listener_id = str(uuid.uuid4())
    with agent.client() as client:
        with pytest.raises(BadRequest) as err:
            client.upload_udp_listener(agent.amphora_id, listener_id,
                                       lvs_config(agent, lb_namespace, listener_id, extra))
        assert expect in str(err.value.body)
        with pytest.raises(NotFound):
            client.get_udp_listener(listener_id)


def test_net_namespace_must_be_the_agents(agent: RunningAgent, lb_namespace: str) -> None:
    listener_id = str(uuid.uuid4())
    with agent.client() as client, pytest.raises(BadRequest) as err:
        client.upload_udp_listener(agent.amphora_id, listener_id,
                                   lvs_config(agent, "other-ns", listener_id))
    assert "net_namespace" in str(err.value.body)
