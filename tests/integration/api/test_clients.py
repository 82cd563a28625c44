"""Real clients nobody here wrote: openstacksdk's ``load_balancer`` proxy drives
every resource of the API, and the ``openstack loadbalancer`` command line
(python-openstackclient + python-octaviaclient, in .venv-osc) creates, lists,
shows, sets, deletes and reads status and stats; the load balancers both build
serve traffic on the local fabric."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.conftest import Stack

pytestmark = pytest.mark.root


def _active(conn: Any, lb_id: str) -> Any:
    return conn.load_balancer.wait_for_load_balancer(lb_id, status="ACTIVE", failures=["ERROR"],
                                                     interval=0.2, wait=90)


def test_sdk_builds_an_lb_that_serves(stack: Stack) -> None:
    conn = stack.sdk()
    lb = conn.load_balancer.create_load_balancer(name="web",
                                                 vip_subnet_id=stack.subnet("vip"))
    assert lb.provisioning_status == "PENDING_CREATE"
    assert lb.project_id == "demo"
    lb = _active(conn, lb.id)
    assert lb.vip_address and lb.vip_subnet_id == stack.subnet("vip")
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
    conn.load_balancer.delete_load_balancer(lb.id, cascade=True)
    conn.load_balancer.wait_for_delete(conn.load_balancer.get_load_balancer(lb.id),
                                       interval=0.2, wait=60)
    assert list(conn.load_balancer.load_balancers()) == []


OPENSTACK = Path(__file__).resolve().parents[3] / ".venv-osc" / "bin" / "openstack"


def _cli(stack: Stack, *args: str) -> Any:
    """One ``openstack`` command against the API (no auth, as a devstack
    noauth endpoint); JSON output parsed when the command has any."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
           "OS_AUTH_TYPE": "none", "OS_ENDPOINT": stack.endpoint}
    done = subprocess.run([str(OPENSTACK), *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "json" in args or args[1:3] == ("status", "show") \
        else done.stdout


def _parallel(stack: Stack, *commands: tuple[str, ...]) -> list[Any]:
    """Read-only commands at once: each ``openstack`` start costs seconds."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: _cli(stack, *args), commands))


def test_openstack_cli(stack: Stack) -> None:
    m1, m2 = stack.site.members
    lb = _cli(stack, "loadbalancer", "create", "--name", "cli", "--vip-subnet-id",
              stack.subnet("vip"), "--wait", "-f", "json")
    listener = _cli(stack, "loadbalancer", "listener", "create", "--name", "web",
                    "--protocol", "HTTP", "--protocol-port", "80", "--wait", "-f", "json",
                    lb["id"])
    pool = _cli(stack, "loadbalancer", "pool", "create", "--name", "pool", "--protocol",
                "HTTP", "--lb-algorithm", "ROUND_ROBIN", "--listener", listener["id"],
                "--wait", "-f", "json")
    m1_id = _cli(stack, "loadbalancer", "member", "create", "--name", "m1", "--address",
                 str(m1.ipv4), "--protocol-port", "80", "--subnet-id", stack.subnet("member"),
                 "--wait", "-f", "json", pool["id"])["id"]
    _cli(stack, "loadbalancer", "member", "create", "--name", "m2", "--address", str(m2.ipv4),
         "--protocol-port", "80", "--wait", pool["id"])
    shown, listed, members, listeners, pools = _parallel(
        stack, ("loadbalancer", "show", "-f", "json", lb["id"]),
        ("loadbalancer", "list", "--name", "cli", "-f", "json"),
        ("loadbalancer", "member", "list", "-f", "json", pool["id"]),
        ("loadbalancer", "listener", "list", "-f", "json", "--loadbalancer", lb["id"]),
        ("loadbalancer", "pool", "list", "-f", "json", "--loadbalancer", lb["id"]))
    assert shown["provisioning_status"] == "ACTIVE"
    assert [x["id"] for x in listed] == [lb["id"]]
    assert sorted(m["name"] for m in members) == ["m1", "m2"]
    assert [x["id"] for x in listeners] == [listener["id"]]
    assert [x["id"] for x in pools] == [pool["id"]]
    vip = shown["vip_address"]
    assert stack.site.served_by(vip, {"m1", "m2"}) == {"m1", "m2"}

    _cli(stack, "loadbalancer", "set", "--description", "from the cli", "--wait", lb["id"])
    _cli(stack, "loadbalancer", "listener", "set", "--name", "web2", "--wait", listener["id"])
    _cli(stack, "loadbalancer", "pool", "set", "--description", "p", "--wait", pool["id"])
    _cli(stack, "loadbalancer", "member", "set", "--weight", "0", "--wait", pool["id"], m1_id)
    assert stack.site.served_by(vip, {"m2"}) == {"m2"}
    shown, member, listener_shown, pool_shown, status, listener_stats = _parallel(
        stack, ("loadbalancer", "show", "-f", "json", lb["id"]),
        ("loadbalancer", "member", "show", "-f", "json", pool["id"], m1_id),
        ("loadbalancer", "listener", "show", "-f", "json", listener["id"]),
        ("loadbalancer", "pool", "show", "-f", "json", pool["id"]),
        ("loadbalancer", "status", "show", lb["id"]),
        ("loadbalancer", "listener", "stats", "show", "-f", "json", listener["id"]))
    assert shown["description"] == "from the cli"
    assert member["weight"] == 0
    assert listener_shown["name"] == "web2"
    assert pool_shown["description"] == "p"
    tree = status["loadbalancer"]
    assert tree["provisioning_status"] == "ACTIVE"
    assert {m["address"] for m in tree["listeners"][0]["pools"][0]["members"]} == {
        str(m1.ipv4), str(m2.ipv4)}
    assert listener_stats["request_errors"] == 0
    # the counters arrive with the amphora's heartbeats
    deadline = time.monotonic() + 30
    while (stats := _cli(stack, "loadbalancer", "stats", "show", "-f", "json", lb["id"]))[
            "total_connections"] < 12 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stats["total_connections"] >= 12

    _cli(stack, "loadbalancer", "member", "delete", "--wait", pool["id"], m1_id)
    _cli(stack, "loadbalancer", "pool", "delete", "--wait", pool["id"])
    _cli(stack, "loadbalancer", "listener", "delete", "--wait", listener["id"])
    _cli(stack, "loadbalancer", "delete", "--wait", lb["id"])
    assert _cli(stack, "loadbalancer", "list", "-f", "json") == []
