"""Status notifications end to end: an LB created and deleted on the fabric reaches a
webhook receiver on loopback as signed events carrying the whole object."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import pytest

from tests.integration.controller.conftest import Site
from tests.support.webhook import WebhookReceiver

SECRET = "fabric-webhook-secret"


def test_lb_create_and_delete_are_signed_webhook_events(site: Site, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = WebhookReceiver()
    extra = (f"[notifications]\ndrivers = log, webhook\nwebhook_url = {receiver.url}\n"
             f"webhook_secret = {SECRET}\nwebhook_backoff = 0.05\n")
    try:
        with site.service(f"sqlite:///{tmp_path}/state.db", extra=extra) as service:
            api = service.api
            lb = api.create_load_balancer(name="notified", listeners=[{
                "protocol": "HTTP", "protocol_port": 80,
                "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                 "members": [{"address": str(site.members[0].ipv4),
                                              "protocol_port": 80}]}}])
            lb_id = lb["id"]
            lb = api.wait(lb_id, timeout=60)
            assert lb["provisioning_status"] == "ACTIVE"
            api.delete_load_balancer(lb_id, cascade=True)
            api.wait_deleted(lb_id, timeout=60)

            def lb_states(reqs: list) -> list[str]:  # type: ignore[type-arg]
                return [r.json()["new_status"]["provisioning_status"] for r in reqs
                        if r.json()["object_id"] == lb_id]

            got = receiver.wait_for(lambda reqs: "DELETED" in lb_states(reqs))
    finally:
        receiver.close()
    for r in got:
        expected = "sha256=" + hmac.new(SECRET.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.headers["X-Amphora-Signature"] == expected
    assert lb_states(got) == ["PENDING_CREATE", "ACTIVE", "PENDING_DELETE", "DELETED"]
    events = [r.json() for r in got if r.json()["object_id"] == lb_id]
    active = events[1]
    assert active["object_type"] == "loadbalancer"
    assert active["old_status"] == {"provisioning_status": "PENDING_CREATE",
                                    "operating_status": "OFFLINE"}
    assert active["new_status"] == {"provisioning_status": "ACTIVE",
                                    "operating_status": "ONLINE"}
    assert active["payload"]["id"] == lb_id and active["payload"]["name"] == "notified"
    assert active["payload"]["vip_address"] == lb["vip_address"]
    assert len(active["payload"]["listeners"]) == 1 and active["timestamp"]
    kinds = {r.json()["object_type"] for r in got}
    assert {"loadbalancer", "listener", "pool", "member", "amphora"} <= kinds
    amphora_states = [r.json()["new_status"]["status"] for r in got
                      if r.json()["object_type"] == "amphora"]
    assert amphora_states[0] == "BOOTING" and amphora_states[-1] == "DELETED"
    assert "ALLOCATED" in amphora_states
    # the log driver logged the events; the secret is never logged
    assert any("loadbalancer.status.update" in m for m in caplog.messages)
    assert not any(SECRET in m for m in caplog.messages)
