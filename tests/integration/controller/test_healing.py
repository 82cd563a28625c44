"""Health and failover on the local fabric: heartbeats from real agents into
the store, a killed amphora detected and replaced (ACTIVE_STANDBY keeps
serving through the standby, SINGLE serves again once replaced) with every
status change received as a signed webhook event, a failover that cannot
reach its new amphora fails within its budget, and the circuit breaker."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute
from sqlalchemy import select

from amphora_contract import heartbeat, netns
from controller_stub.compute import nsutil
from controller_stub.controller import config as config_mod
from controller_stub.controller import models
from controller_stub.controller.daemon import Service
from controller_stub.controller.health import HealthManager, HealthSettings
from tests.integration.controller.conftest import Site, wait_for
from tests.support.fabric import Listener, probe
from tests.support.webhook import WebhookReceiver

MASTER_KEY = "test-master-key-0123456789"
SECRET = "healing-webhook-secret"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    webhook = WebhookReceiver()
    try:
        yield webhook
    finally:
        webhook.close()


def _notified(receiver: WebhookReceiver) -> str:
    return (f"[notifications]\ndrivers = webhook\nwebhook_url = {receiver.url}\n"
            f"webhook_secret = {SECRET}\nwebhook_backoff = 0.05\n")


def _events(receiver: WebhookReceiver, since: int = 0) -> list[dict[str, Any]]:
    """The events received from request ``since`` on, each signature verified,
    with its arrival time as ``at``."""
    events = []
    for r in receiver.requests[since:]:
        expected = "sha256=" + hmac.new(SECRET.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.headers["X-Amphora-Signature"] == expected
        events.append({**r.json(), "at": r.at})
    return events


def _mark_after_create(receiver: WebhookReceiver, lb_id: str) -> int:
    """Where the events after the LB's create begin: events are delivered in
    order, so once its ``ACTIVE`` arrived, every earlier LB and amphora change has."""
    receiver.wait_for(lambda reqs: ("PENDING_CREATE", "ACTIVE") in _transitions(
        _events(receiver), lb_id))
    return len(receiver.requests)


def _transitions(events: list[dict[str, Any]], object_id: str,
                 field: str = "provisioning_status") -> list[tuple[Any, Any]]:
    """(old, new) of ``field`` for each event of ``object_id`` that changed it."""
    return [(e["old_status"][field], e["new_status"][field]) for e in events
            if e["object_id"] == object_id and e["old_status"][field] != e["new_status"][field]]


def _lb_event(events: list[dict[str, Any]], lb_id: str, old: str, new: str) -> dict[str, Any]:
    """The one event that moved the LB's provisioning status from ``old`` to ``new``."""
    (found,) = [e for e in events if e["object_id"] == lb_id
                and e["old_status"]["provisioning_status"] == old
                and e["new_status"]["provisioning_status"] == new]
    return found


class VipPoller:
    """The client asks the VIP every 20 ms from its namespace; each request's
    start time and whether it was answered are recorded."""

    def __init__(self, site: Site, vip: str) -> None:
        self.samples: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(site.client.namespace, vip),
                                        daemon=True, name="vip-poller")

    def _run(self, namespace: str, vip: str) -> None:
        with netns.entered(namespace):
            while not self._stop.wait(0.02):
                started, answered = time.monotonic(), False
                conn = http.client.HTTPConnection(vip, 80, timeout=0.5)
                try:
                    conn.request("GET", "/")
                    answered = conn.getresponse().status == 200
                except (OSError, http.client.HTTPException):
                    pass
                finally:
                    conn.close()
                self.samples.append((started, answered))

    def __enter__(self) -> VipPoller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def first_answer_after(self, moment: float) -> float:
        return min(t for t, ok in list(self.samples) if ok and t > moment)


def _service(site: Site, tmp_path: Path, *, threshold: float = 0.5,
             **kwargs: Any) -> Service:
    path = site.config(f"sqlite:///{tmp_path}/state.db", **kwargs)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"[health_manager]\nenabled = true\nbind_port = 0\n"
                     f"heartbeat_key = {MASTER_KEY}\nheartbeat_interval = 1\n"
                     f"heartbeat_timeout = 3\ncheck_interval = 0.5\n"
                     f"failover_threshold = {threshold}\n")
    return Service(config_mod.load(path))


def _create(service: Service, site: Site, topology: str) -> dict[str, Any]:
    api = service.api
    profile = api.create_flavor_profile(topology, {"loadbalancer_topology": topology})
    flavor = api.create_flavor(topology, profile["id"])
    lb = api.create_load_balancer(name="web", flavor_id=flavor["id"], listeners=[{
        "protocol": "HTTP", "protocol_port": 80,
        "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                         "members": [{"address": str(m.ipv4), "protocol_port": 80}
                                     for m in site.members]}}])
    lb = api.wait(lb["id"], timeout=60)
    assert lb["provisioning_status"] == "ACTIVE", lb
    return lb


def _last_seen(sessions: Any, amphora_ids: list[str]) -> dict[str, Any]:
    with sessions() as session:
        return {h.amphora_id: h.last_update for h in session.scalars(
            select(models.AmphoraHealth).where(models.AmphoraHealth.amphora_id.in_(amphora_ids)))}


def _connections(service: Service) -> int:
    with service.sessions() as session:
        return sum(s.total_connections for s in session.scalars(
            select(models.ListenerStatistics)))


def _kill(amphora: dict[str, Any]) -> None:
    """The amphora dies: every process in its namespaces is SIGKILLed, the
    namespaces go (its addresses stay allocated, as a dead VM's ports do)."""
    data = amphora["compute_data"]
    nsutil.crash(data["haproxy_namespace"], data["namespace"])


def _mac(namespace: str, ifname: str) -> str:
    def read() -> str:
        with IPRoute() as ipr:
            return str(ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0]
                       .get_attr("IFLA_ADDRESS"))
    return nsutil.run_in(namespace, read)


def _bridge_ports(fabric_namespace: str, bridge: str) -> dict[int, str]:
    """Index → MAC of the ports on ``bridge``."""
    def read() -> dict[int, str]:
        with IPRoute() as ipr:
            master = ipr.link_lookup(ifname=bridge)[0]
            return {link["index"]: str(link.get_attr("IFLA_ADDRESS"))
                    for link in ipr.get_links() if link.get_attr("IFLA_MASTER") == master}
    return nsutil.run_in(fabric_namespace, read)


def _port_index(endpoint: Any) -> int:
    """The bridge port (fabric side of the veth) of ``endpoint``."""
    def peer_index() -> int:
        with IPRoute() as ipr:
            return int(ipr.get_links(ipr.link_lookup(ifname="eth0")[0])[0]
                       .get_attr("IFLA_LINK"))
    return nsutil.run_in(endpoint.namespace, peer_index)


def _gateway_mac_seen(namespace: str, gateway: str) -> str | None:
    def read() -> str | None:
        with IPRoute() as ipr:
            for entry in ipr.get_neighbours(dst=gateway):
                return str(entry.get_attr("NDA_LLADDR"))
        return None
    return nsutil.run_in(namespace, read)


def test_a_dead_endpoint_leaves_the_gateway_mac_alone(site: Site) -> None:
    """Survivors keep reaching the gateway (where heartbeats go) at once when the
    endpoint owning the bridge's lowest port MAC dies with its namespace."""
    fabric = site.fabric
    network = fabric.networks["member"]
    extra = [fabric.create_client(network) for _ in range(3)]
    endpoints = [*site.members, *extra]
    bridge_mac = _mac(fabric.namespace, network.bridge)
    ports = _bridge_ports(fabric.namespace, network.bridge)
    victim = min(endpoints, key=lambda e: ports[_port_index(e)])
    victim_port = _port_index(victim)
    survivors = [e for e in endpoints if e is not victim]
    gateway = str(network.gateway4)
    with Listener(fabric.namespace, gateway, 5599, b"gw") as listener:
        for endpoint in survivors:
            assert probe(endpoint.namespace, gateway, 5599) == b"gw"
            assert _gateway_mac_seen(endpoint.namespace, gateway) == bridge_mac
        nsutil.crash(victim.namespace)
        # the kernel removes a deleted namespace's links asynchronously
        wait_for(lambda: victim_port not in _bridge_ports(fabric.namespace, network.bridge),
                 10, "the dead endpoint's port gone from the bridge")
        assert _mac(fabric.namespace, network.bridge) == bridge_mac
        for endpoint in survivors:
            assert probe(endpoint.namespace, gateway, 5599, timeout=1) == b"gw"
        assert len(listener.peers) == 2 * len(survivors)


def _failover_done(service: Service, lb_id: str, old_id: str) -> bool:
    lb = service.api.get_load_balancer(lb_id)
    ids = {a["id"] for a in service.api.amphorae(lb_id)}
    return (old_id not in ids and lb["provisioning_status"] == "ACTIVE"
            and lb["operating_status"] == "ONLINE")


@pytest.mark.parametrize("topology", ["ACTIVE_STANDBY", "SINGLE"])
def test_killed_amphora_is_detected_and_replaced(site: Site, tmp_path: Path, topology: str,
                                                 receiver: WebhookReceiver,
                                                 record_property: Any) -> None:
    with _service(site, tmp_path, extra=_notified(receiver)) as service:
        lb = _create(service, site, topology)
        vip, api = lb["vip_address"], service.api
        assert site.served_by(vip, {"m1", "m2"}) == {"m1", "m2"}
        amphorae = api.amphorae(lb["id"])
        ids = [a["id"] for a in amphorae]
        # heartbeats from the real agents reach the store: last-seen and statuses
        wait_for(lambda: len(_last_seen(service.sessions, ids)) == len(ids), 15, "first heartbeats")
        wait_for(lambda: _connections(service) >= 12, 15,
                 "the requests counted in listener statistics")

        victim = next(a for a in amphorae if a["role"] in ("MASTER", "STANDALONE"))
        survivors = [a["id"] for a in amphorae if a["id"] != victim["id"]]
        with VipPoller(site, vip) as poller:
            wait_for(lambda: any(ok for _, ok in poller.samples), 10, "the poller answered")
            mark = _mark_after_create(receiver, lb["id"])
            _kill(victim)
            killed = time.monotonic()
            if topology == "ACTIVE_STANDBY":
                # the standby takes the VIP well before the failover is even detected
                assert site.served_by(vip, {"m1", "m2"}, timeout=3) == {"m1", "m2"}
            wait_for(lambda: _failover_done(service, lb["id"], victim["id"]), 60,
                     "the dead amphora replaced and the LB ONLINE")
            assert site.served_by(vip, {"m1", "m2"}) == {"m1", "m2"}
            answered = poller.first_answer_after(killed)
        record_property("vip_outage_seconds", round(answered - killed, 3))
        assert service.health is not None
        assert service.health.failovers_started >= 1
        after = api.amphorae(lb["id"])
        assert len(after) == len(amphorae)
        assert {a["status"] for a in after} == {"ALLOCATED"}
        assert set(survivors) <= {a["id"] for a in after}
        (replacement,) = {a["id"] for a in after} - set(ids)
        if topology == "ACTIVE_STANDBY":
            roles = {a["id"]: a["role"] for a in after}
            assert roles[survivors[0]] == "MASTER"
            assert sorted(roles.values()) == ["BACKUP", "MASTER"]
        assert not nsutil.listed(victim["compute_data"]["namespace"])
        # the replacement sends heartbeats too
        wait_for(lambda: len(_last_seen(service.sessions, [a["id"] for a in after]))
                 == len(after), 15, "heartbeats from the replacement")

        # every change of the failover arrived at the webhook, signed
        receiver.wait_for(lambda reqs: len(_transitions(
            _events(receiver, mark), victim["id"], "status")) == 2)
        events = _events(receiver, mark)
    assert _transitions(events, lb["id"]) == [("ACTIVE", "PENDING_UPDATE"),
                                              ("PENDING_UPDATE", "ACTIVE")]
    started = _lb_event(events, lb["id"], "ACTIVE", "PENDING_UPDATE")
    done = _lb_event(events, lb["id"], "PENDING_UPDATE", "ACTIVE")
    assert done["new_status"]["operating_status"] == "ONLINE"
    assert done["payload"]["id"] == lb["id"] and done["payload"]["vip_address"] == vip
    assert _transitions(events, victim["id"], "status") == [("ALLOCATED", "PENDING_DELETE"),
                                                             ("PENDING_DELETE", "DELETED")]
    assert _transitions(events, replacement, "status") == [(None, "BOOTING"),
                                                            ("BOOTING", "ALLOCATED")]
    joined = [e for e in events if e["object_id"] == replacement][-1]["payload"]
    assert joined["role"] == ("BACKUP" if topology == "ACTIVE_STANDBY" else "STANDALONE")
    if topology == "ACTIVE_STANDBY":
        # the standby served before the failover had even started
        assert answered < started["at"]
    else:
        # nothing served the VIP until the replacement did, after the failover started
        assert answered > started["at"]


def test_failover_of_unreachable_amphora_fails_within_budget_then_works(
        site: Site, tmp_path: Path, receiver: WebhookReceiver) -> None:
    """Operator-triggered: one amphora's failover fails (ERROR with the reason,
    as an event too), then the LB's failover replaces it; each change an event."""
    with _service(site, tmp_path, attempts=2, seconds=2.0, agent_timeout=1.0,
                  extra=_notified(receiver)) as service:
        lb = _create(service, site, "SINGLE")
        api = service.api
        old = api.amphorae(lb["id"])[0]
        # the replacement's agent dies right after it boots: unreachable from plug on
        boot = service.compute.boot

        def boot_then_die(amphora_id: str, **kwargs: Any) -> dict[str, Any]:
            data = boot(amphora_id, **kwargs)
            for pid in nsutil.pids_in(data["namespace"]):
                os.kill(pid, signal.SIGKILL)
            return data

        service.compute.boot = boot_then_die  # type: ignore[method-assign]
        mark = _mark_after_create(receiver, lb["id"])
        started = time.monotonic()
        api.failover_amphora(old["id"])
        failed = api.wait(lb["id"], timeout=60)
        elapsed = time.monotonic() - started
        assert failed["provisioning_status"] == "ERROR"
        assert failed["status_reason"].startswith("plug_new: amphora unreachable")
        assert elapsed < 30, elapsed
        # the replacement it booted is gone; the old amphora waits for the operator
        assert [a["id"] for a in api.amphorae(lb["id"])] == [old["id"]]
        receiver.wait_for(lambda reqs: ("PENDING_UPDATE", "ERROR") in _transitions(
            _events(receiver, mark), lb["id"]))
        first = _events(receiver, mark)
        service.compute.boot = boot  # type: ignore[method-assign]
        mark = len(receiver.requests)
        api.failover_load_balancer(lb["id"])
        healed = api.wait(lb["id"], timeout=60)
        assert (healed["provisioning_status"], healed["operating_status"]) == (
            "ACTIVE", "ONLINE")
        assert old["id"] not in {a["id"] for a in api.amphorae(lb["id"])}
        assert site.served_by(lb["vip_address"], {"m1", "m2"}) == {"m1", "m2"}
        receiver.wait_for(lambda reqs: ("PENDING_DELETE", "DELETED") in _transitions(
            _events(receiver, mark), old["id"], "status"))
        second = _events(receiver, mark)
    assert _transitions(first, lb["id"]) == [("ACTIVE", "PENDING_UPDATE"),
                                             ("PENDING_UPDATE", "ERROR")]
    error = _lb_event(first, lb["id"], "PENDING_UPDATE", "ERROR")
    assert error["payload"]["status_reason"] == failed["status_reason"]
    assert _transitions(first, old["id"], "status") == [("ALLOCATED", "PENDING_DELETE")]
    (discarded,) = {e["object_id"] for e in first if e["object_type"] == "amphora"} - {
        old["id"]}
    assert _transitions(first, discarded, "status") == [(None, "BOOTING"),
                                                        ("BOOTING", "DELETED")]
    assert _transitions(second, lb["id"]) == [("ERROR", "PENDING_UPDATE"),
                                              ("PENDING_UPDATE", "ACTIVE")]
    assert _lb_event(second, lb["id"], "PENDING_UPDATE", "ACTIVE")["new_status"] == {
        "provisioning_status": "ACTIVE", "operating_status": "ONLINE"}
    assert _transitions(second, old["id"], "status") == [("PENDING_DELETE", "DELETED")]


@pytest.mark.parametrize("resumed", [["amp-0", "amp-1"], ["amp-0"]],
                         ids=["both-resume", "one-resumes"])
def test_circuit_breaker_opens_and_closes(tmp_path: Path, resumed: list[str]) -> None:
    """10 amphorae, 2 stale at once (20% > 10%): the breaker opens and no failover
    starts. Real signed heartbeats from both close it with no failover at all; from
    one of them, the share falls to 10% (not above): it closes and the amphora that
    is still silent is failed over, alone."""
    from controller_stub.controller import db

    sessions = db.open_store(f"sqlite:///{tmp_path}/state.db")
    started: list[tuple[str, str]] = []
    settings = HealthSettings(enabled=True, master_key=MASTER_KEY, heartbeat_interval=1,
                              timeout=3, breaker_threshold=0.1)
    manager = HealthManager(sessions, settings, namespace=None, bind_ip="127.0.0.1",
                            start_failover=lambda lb, amp: started.append((lb, amp)) or True)
    manager.listener.start()  # no checker thread: this test runs the checks
    now = models.utcnow()
    old = now - datetime.timedelta(seconds=10)
    ids = [f"amp-{i}" for i in range(10)]
    with sessions.begin() as session:
        for i, amphora_id in enumerate(ids):
            session.add(models.LoadBalancer(id=f"lb-{i}", topology="SINGLE",
                                            provisioning_status="ACTIVE",
                                            operating_status="ONLINE"))
            session.add(models.Amphora(id=amphora_id, load_balancer_id=f"lb-{i}",
                                       status="ALLOCATED", role="STANDALONE"))
            session.add(models.AmphoraHealth(amphora_id=amphora_id,
                                             last_update=old if i < 2 else now))
    assert manager.check() == []
    assert started == []
    status = manager.status()
    assert status["breaker_open"] is True
    assert status["breaker_reason"].startswith("2 of 10 amphorae silent")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for amphora_id in resumed:
                body = heartbeat.message(amphora_id, 1, {}, {})
                sock.sendto(heartbeat.wrap_v4(body, heartbeat.derive_amphora_key(
                    MASTER_KEY, amphora_id)), manager.address)
        wait_for(lambda: (manager.flush() or True) and len(
            [t for t in _last_seen(sessions, resumed).values() if t > old]) == len(resumed),
            10, "the heartbeats stored")
    finally:
        manager.listener.stop()
    still_silent = [a for a in ("amp-0", "amp-1") if a not in resumed]
    assert manager.check() == still_silent
    assert manager.status()["breaker_open"] is False
    assert started == [(f"lb-{a[-1]}", a) for a in still_silent]



def _heartbeat_pids(amphora: dict[str, Any]) -> list[int]:
    found = []
    for pid in nsutil.pids_in(amphora["compute_data"]["namespace"]):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"amphora_agent.heartbeat_service" in handle.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def test_breaker_on_the_fabric_holds_failover_while_heartbeats_stop(
        site: Site, tmp_path: Path) -> None:
    """Both amphorae of two SINGLE LBs fall silent at once (their heartbeat
    senders stopped, as a network fault would): the breaker opens and nothing
    is failed over; heartbeats resume and it closes, still with no failover."""
    with _service(site, tmp_path, threshold=0.1) as service:
        api, health = service.api, service.health
        assert health is not None
        lbs = [_create(service, site, "SINGLE")]
        lbs.append(api.wait(api.create_load_balancer(name="web2", listeners=[{
            "protocol": "HTTP", "protocol_port": 80,
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": str(site.members[0].ipv4),
                                          "protocol_port": 80}]}}])["id"], timeout=60))
        amphorae = [a for lb in lbs for a in api.amphorae(lb["id"])]
        ids = [a["id"] for a in amphorae]
        wait_for(lambda: len(_last_seen(service.sessions, ids)) == 2, 15, "first heartbeats")
        stopped = [pid for a in amphorae for pid in _heartbeat_pids(a)]
        assert len(stopped) == 2
        try:
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            wait_for(lambda: health.status()["breaker_open"], 20, "the breaker open")
            assert health.status()["breaker_reason"].startswith("2 of 2 amphorae silent")
            assert health.failovers_started == 0
            assert {a["id"] for lb in lbs for a in api.amphorae(lb["id"])} == set(ids)
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
        wait_for(lambda: not health.status()["breaker_open"], 20, "the breaker closed")
        assert health.failovers_started == 0
        assert [api.get_load_balancer(lb["id"])["provisioning_status"] for lb in lbs] == [
            "ACTIVE", "ACTIVE"]
