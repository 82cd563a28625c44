"""Real clients nobody here wrote: openstacksdk's ``load_balancer`` proxy drives
every resource of the API, and the ``openstack loadbalancer`` command line
(python-openstackclient + python-octaviaclient, in .venv-osc) creates, lists,
shows, sets, deletes and reads status and stats; the load balancers both build
serve traffic on the local fabric."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.api.conftest import Stack

pytestmark = pytest.mark.root


def _active(conn: Any, lb_id: str) -> Any:
    return conn.load_balancer.wait_for_load_balancer(lb_id, status="ACTIVE", failures=["ERROR"],
                                                     interval=0.2, wait=90)


def test_sdk_builds_an_lb_that_serves(stack: Stack) -> None:
    conn = stack.sdk()
    lb = conn.load_balancer.create_load_balancer(name="web", vip_address="203.0.113.77",
                                                 vip_network_id=stack.network("vip"))
    assert lb.provisioning_status == "PENDING_CREATE"
    assert lb.project_id == "demo"
    lb = _active(conn, lb.id)
    assert (lb.vip_address, lb.vip_subnet_id) == ("203.0.113.77", stack.subnet("vip"))
    listener = conn.load_balancer.create_listener(loadbalancer_id=lb.id, protocol="HTTP",
                                                  protocol_port=80, name="http")
    _active(conn, lb.id)
    pool = conn.load_balancer.create_pool(listener_id=listener.id, protocol="HTTP",
                                          lb_algorithm="ROUND_ROBIN", name="pool")
    _active(conn, lb.id)
    m1, m2 = stack.site.members
    member_subnet = stack.subnet("member")
    first = conn.load_balancer.create_member(pool, address=str(m1.ipv4), protocol_port=80,
                                             subnet_id=member_subnet, name="m1")
    _active(conn, lb.id)
    monitor = conn.load_balancer.create_health_monitor(pool_id=pool.id, type="HTTP", delay=1,
                                                       timeout=1, max_retries=2)
    assert (monitor.http_method, monitor.url_path, monitor.expected_codes) == ("GET", "/",
                                                                               "200")
    _active(conn, lb.id)
    assert stack.site.served_by(lb.vip_address, {"m1"}) == {"m1"}

    second = conn.load_balancer.create_member(pool, address=str(m2.ipv4), protocol_port=80,
                                              subnet_id=member_subnet, name="m2")
    _active(conn, lb.id)
    assert stack.site.served_by(lb.vip_address, {"m1", "m2"}) == {"m1", "m2"}

    # show, list with filters, update
    assert conn.load_balancer.get_listener(listener.id).default_pool_id == pool.id
    assert [x.id for x in conn.load_balancer.load_balancers(name="web")] == [lb.id]
    assert {m.name for m in conn.load_balancer.members(pool)} == {"m1", "m2"}
    assert [p.id for p in conn.load_balancer.pools(loadbalancer_id=lb.id)] == [pool.id]
    assert [h.id for h in conn.load_balancer.health_monitors()] == [monitor.id]
    conn.load_balancer.update_member(first, pool, weight=0)
    _active(conn, lb.id)
    assert conn.load_balancer.get_member(first, pool).weight == 0
    assert stack.site.served_by(lb.vip_address, {"m2"}) == {"m2"}
    conn.load_balancer.update_listener(listener, name="http-2")
    _active(conn, lb.id)
    conn.load_balancer.update_pool(pool, description="the pool")
    _active(conn, lb.id)
    conn.load_balancer.update_health_monitor(monitor, delay=2)
    _active(conn, lb.id)
    assert conn.load_balancer.get_health_monitor(monitor).delay == 2
    lb = conn.load_balancer.update_load_balancer(lb, description="front")
    assert _active(conn, lb.id).description == "front"

    stats = conn.load_balancer.get_load_balancer_statistics(lb.id)
    assert stats.total_connections >= 0
    assert conn.load_balancer.get_listener_statistics(listener.id).bytes_in >= 0

    conn.load_balancer.update_member(first, pool, weight=1)
    _active(conn, lb.id)
    conn.load_balancer.delete_member(second, pool)
    _active(conn, lb.id)
    conn.load_balancer.delete_health_monitor(monitor)
    _active(conn, lb.id)
    conn.load_balancer.failover_load_balancer(lb.id)
    _active(conn, lb.id)
    assert stack.site.served_by(lb.vip_address, {"m1"}) == {"m1"}
    # Octavia's batch update (no openstacksdk call for it): m2 replaces m1
    batch = requests.put(f"{stack.endpoint}/v2/lbaas/pools/{pool.id}/members", timeout=30,
                         json={"members": [{"address": str(m2.ipv4), "protocol_port": 80}]})
    assert batch.status_code == 202
    _active(conn, lb.id)
    assert stack.site.served_by(lb.vip_address, {"m2"}) == {"m2"}
    assert [m.address for m in conn.load_balancer.members(pool)] == [str(m2.ipv4)]
    conn.load_balancer.delete_load_balancer(lb.id, cascade=True)
    conn.load_balancer.wait_for_delete(conn.load_balancer.get_load_balancer(lb.id),
                                       interval=0.2, wait=60)
    assert list(conn.load_balancer.load_balancers()) == []


OPENSTACK = Path(__file__).resolve().parents[3] / ".venv-osc" / "bin" / "openstack"


def _cli(stack: Stack, *commands: str) -> list[Any]:
    """``openstack loadbalancer`` commands run by one ``openstack`` process (its
    interactive shell, fed on stdin: each start costs seconds), no auth as a
    noauth endpoint; the JSON documents they print, in order."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
           "OS_AUTH_TYPE": "none", "OS_ENDPOINT": stack.endpoint}
    done = subprocess.run([str(OPENSTACK)], input="\n".join(commands) + "\n",
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    # the shell's exit status is that of its end of input, not of the commands:
    # a failed command says so on stderr (and its JSON is missing below)
    assert not done.stderr.strip(), done.stderr
    decoder, text, docs, at = json.JSONDecoder(), done.stdout, [], 0
    while (found := re.search(r"^[\[{]", text[at:], re.MULTILINE)) is not None:
        doc, at = decoder.raw_decode(text, at + found.start())
        docs.append(doc)
    return docs


def test_openstack_cli(stack: Stack) -> None:
    m1, m2 = stack.site.members
    member_subnet = stack.subnet("member")
    (lb, listener, pool, _, _, shown, listed, members, listeners, pools) = _cli(
        stack,
        f"loadbalancer create --name cli --vip-subnet-id {stack.subnet('vip')} --wait -f json",
        "loadbalancer listener create --name web --protocol HTTP --protocol-port 80 --wait "
        "-f json cli",
        "loadbalancer pool create --name pool --protocol HTTP --lb-algorithm ROUND_ROBIN "
        "--listener web --wait -f json",
        f"loadbalancer member create --name m1 --address {m1.ipv4} --protocol-port 80 "
        f"--subnet-id {member_subnet} --wait -f json pool",
        f"loadbalancer member create --name m2 --address {m2.ipv4} --protocol-port 80 "
        "--wait -f json pool",
        "loadbalancer show -f json cli",
        "loadbalancer list --name cli -f json",
        "loadbalancer member list -f json pool",
        "loadbalancer listener list --loadbalancer cli -f json",
        "loadbalancer pool list --loadbalancer cli -f json")
    assert shown["provisioning_status"] == "ACTIVE"
    assert [x["id"] for x in listed] == [lb["id"]]
    assert sorted(m["name"] for m in members) == ["m1", "m2"]
    assert [x["id"] for x in listeners] == [listener["id"]]
    assert [x["id"] for x in pools] == [pool["id"]]
    vip = shown["vip_address"]
    assert stack.site.served_by(vip, {"m1", "m2"}) == {"m1", "m2"}

    shown, member, listener_shown, pool_shown, status, listener_stats = _cli(
        stack,
        "loadbalancer set --description from-the-cli --wait cli",
        "loadbalancer listener set --name web2 --wait web",
        "loadbalancer pool set --description p --wait pool",
        "loadbalancer member set --weight 0 --wait pool m1",
        "loadbalancer show -f json cli",
        "loadbalancer member show -f json pool m1",
        "loadbalancer listener show -f json web2",
        "loadbalancer pool show -f json pool",
        "loadbalancer status show cli",
        "loadbalancer listener stats show -f json web2")
    assert shown["description"] == "from-the-cli"
    assert member["weight"] == 0
    assert listener_shown["name"] == "web2"
    assert pool_shown["description"] == "p"
    tree = status["loadbalancer"]
    assert tree["provisioning_status"] == "ACTIVE"
    assert {m["address"] for m in tree["listeners"][0]["pools"][0]["members"]} == {
        str(m1.ipv4), str(m2.ipv4)}
    assert listener_stats["request_errors"] == 0
    assert stack.site.served_by(vip, {"m2"}) == {"m2"}
    # the counters arrive with the amphorae's heartbeats (every second here)
    url = f"{stack.endpoint}/v2/lbaas/loadbalancers/{lb['id']}/stats"
    deadline = time.monotonic() + 30
    while requests.get(url, timeout=10).json()["stats"]["total_connections"] < 12:
        assert time.monotonic() < deadline, "no statistics arrived"
        time.sleep(0.2)
    (stats,) = _cli(stack, "loadbalancer stats show -f json cli")
    assert stats["total_connections"] >= 12

    (remaining,) = _cli(stack, "loadbalancer member delete --wait pool m1",
                        "loadbalancer pool delete --wait pool",
                        "loadbalancer listener delete --wait web2",
                        "loadbalancer delete --wait cli",
                        "loadbalancer list -f json")
    assert remaining == []
