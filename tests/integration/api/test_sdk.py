"""openstacksdk's ``load_balancer`` proxy drives every resource of the API; the
load balancer it builds serves traffic on the local fabric."""

from __future__ import annotations

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
