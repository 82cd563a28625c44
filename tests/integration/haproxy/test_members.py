"""Runtime member changes against real HAProxy and real members."""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterator

import pytest

from controller_stub import haproxy_cli
from controller_stub.client import BadRequest, NotFound
from controller_stub.local_agent import RunningAgent, free_port
from controller_stub.octavia_style import OctaviaStyleConfig
from tests.support import namespaces

MEMBER_IPS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")


@pytest.fixture
def members(lb_namespace: str) -> Iterator[dict[str, namespaces.Member]]:
    port = free_port()
    started = {ip: namespaces.Member(lb_namespace, ip, port, f"member-{ip}")
               for ip in MEMBER_IPS}
    yield started
    for member in started.values():
        member.close()


def _spread(ns: str, port: int, n: int = 30) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        status, body = namespaces.http_get(ns, "127.0.0.1", port)
        assert status == 200
        seen[body.decode()] += 1
    return seen


def _lb(agent: RunningAgent, members: dict[str, namespaces.Member], level: str = "admin"):
    member_port = next(iter(members.values())).server.server_address[1]
    cfg = OctaviaStyleConfig(
        amphora_id=agent.amphora_id, lb_id=str(uuid.uuid4()), listener_id=str(uuid.uuid4()),
        pool_id=str(uuid.uuid4()), base_path=str(agent.base_path),
        bind=f"127.0.0.1:{free_port()}",
        members=[(str(uuid.uuid4()), f"{ip}:{member_port}") for ip in MEMBER_IPS[:2]])
    text = cfg.render()
    if level != "admin":
        text = text.replace("level admin", f"level {level}")
    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, cfg.lb_id, text)
        client.lb_action(cfg.lb_id, "start")
    return cfg, member_port, int(cfg.bind.rsplit(":", 1)[1])


def _wait_up(agent: RunningAgent, cfg: OctaviaStyleConfig, backend: str, count: int) -> None:
    import time

    deadline = time.monotonic() + 10
    with agent.client() as client:
        while time.monotonic() < deadline:
            servers = client.list_servers(cfg.lb_id, backend)
            if sum(1 for s in servers if s["up"] and s["state"] == "ready") >= count:
                return
            time.sleep(0.1)
    raise AssertionError(f"fewer than {count} servers up: {servers}")


def test_runtime_changes_without_reload_and_they_persist(
        agent: RunningAgent, lb_namespace: str, members) -> None:
    cfg, member_port, port = _lb(agent, members)
    backend = f"{cfg.pool_id}:{cfg.listener_id}"
    master = str(agent.base_path / cfg.lb_id / "master.sock")
    reloads = haproxy_cli.show_proc(master).reloads
    _wait_up(agent, cfg, backend, 2)
    assert set(_spread(lb_namespace, port)) == {"member-127.0.0.11", "member-127.0.0.12"}
    new_id = str(uuid.uuid4())
    first_id = cfg.members[0][0]
    with agent.client() as client:
        applied = client.set_server(cfg.lb_id, backend, new_id, address="127.0.0.13",
                                    port=member_port, weight=3)
        assert applied == "runtime"
        _wait_up(agent, cfg, backend, 3)
        assert "member-127.0.0.13" in _spread(lb_namespace, port)

        assert client.set_server(cfg.lb_id, backend, first_id, state="drain") == "runtime"
        assert "member-127.0.0.11" not in _spread(lb_namespace, port)
        assert client.set_server(cfg.lb_id, backend, first_id, state="ready") == "runtime"
        assert client.set_server(cfg.lb_id, backend, first_id, state="maint") == "runtime"
        assert "member-127.0.0.11" not in _spread(lb_namespace, port)

        second_id = cfg.members[1][0]
        assert client.set_server(cfg.lb_id, backend, second_id, weight=0) == "runtime"
        assert client.delete_server(cfg.lb_id, backend, new_id) == "runtime"
        assert client.delete_server(cfg.lb_id, backend, new_id) == "none"
        assert client.set_server(cfg.lb_id, backend, second_id, weight=2) == "runtime"
        assert set(_spread(lb_namespace, port)) == {"member-127.0.0.12"}
        assert haproxy_cli.show_proc(master).reloads == reloads  # no reload happened

        config = client.get_haproxy(cfg.lb_id)
        assert new_id not in config
        first_line = next(line for line in config.splitlines() if first_id in line)
        assert "disabled" in first_line
        assert "weight 2" in next(line for line in config.splitlines() if second_id in line)

        # the changes survive a reload and a stop/start
        client.lb_action(cfg.lb_id, "reload")
        assert set(_spread(lb_namespace, port)) == {"member-127.0.0.12"}
        client.lb_action(cfg.lb_id, "stop")
        client.lb_action(cfg.lb_id, "start")
        _wait_up(agent, cfg, backend, 1)
        assert set(_spread(lb_namespace, port)) == {"member-127.0.0.12"}
        assert client.set_server(cfg.lb_id, backend, first_id, state="ready") == "runtime"
        _wait_up(agent, cfg, backend, 2)
        assert set(_spread(lb_namespace, port)) == {"member-127.0.0.11", "member-127.0.0.12"}
        client.delete_listener(cfg.lb_id)


def test_drain_keeps_the_weight_for_ready(agent: RunningAgent, lb_namespace: str,
                                         members) -> None:
    cfg, _member_port, _port = _lb(agent, members)
    backend = f"{cfg.pool_id}:{cfg.listener_id}"
    first_id = cfg.members[0][0]
    with agent.client() as client:
        client.set_server(cfg.lb_id, backend, first_id, weight=7)
        client.set_server(cfg.lb_id, backend, first_id, state="drain")
        line = next(x for x in client.get_haproxy(cfg.lb_id).splitlines() if first_id in x)
        assert "weight 0" in line and "drained from weight 7" in line
        client.set_server(cfg.lb_id, backend, first_id, state="ready")
        line = next(x for x in client.get_haproxy(cfg.lb_id).splitlines() if first_id in x)
        assert "weight 7" in line and "drained" not in line
        client.delete_listener(cfg.lb_id)


def test_without_an_admin_socket_changes_fall_back_to_reload(
        agent: RunningAgent, lb_namespace: str, members) -> None:
    cfg, member_port, port = _lb(agent, members, level="user")
    backend = f"{cfg.pool_id}:{cfg.listener_id}"
    master = str(agent.base_path / cfg.lb_id / "master.sock")
    reloads = haproxy_cli.show_proc(master).reloads
    new_id = str(uuid.uuid4())
    with agent.client() as client:
        assert client.set_server(cfg.lb_id, backend, new_id, address="127.0.0.13",
                                 port=member_port) == "reload"
        assert haproxy_cli.show_proc(master).reloads == reloads + 1
        assert new_id in client.get_haproxy(cfg.lb_id)
        import time

        deadline = time.monotonic() + 10
        while "member-127.0.0.13" not in _spread(lb_namespace, port):
            assert time.monotonic() < deadline
        client.delete_listener(cfg.lb_id)


def test_bad_member_requests(agent: RunningAgent, members) -> None:
    cfg, _member_port, _port = _lb(agent, members)
    backend = f"{cfg.pool_id}:{cfg.listener_id}"
    before = None
    with agent.client() as client:
        before = client.get_haproxy(cfg.lb_id)
        for body in ({"weight": 999}, {"address": "not-an-ip", "port": 80},
                     {"address": "127.0.0.1"}, {"state": "sleepy"}, {"colour": "red"},
                     {"port": True, "address": "127.0.0.1"}):
            with pytest.raises(BadRequest):
                client.set_server(cfg.lb_id, backend, cfg.members[0][0], **body)
        with pytest.raises(BadRequest):  # a new server needs an address
            client.set_server(cfg.lb_id, backend, str(uuid.uuid4()), weight=1)
        with pytest.raises(BadRequest):
            client.set_server(cfg.lb_id, "bad backend!", "x", weight=1)
        with pytest.raises(NotFound):
            client.set_server(cfg.lb_id, "nosuch:backend", "x", weight=1)
        with pytest.raises(BadRequest):
            client.request("PUT", f"/1.0/ext/loadbalancer/{cfg.lb_id}/backends/{backend}"
                           "/servers/x", data=b"not json", retry_not_ready=False)
        assert client.get_haproxy(cfg.lb_id) == before
        assert "runtime-members" in client.root()["extensions"]
        client.delete_listener(cfg.lb_id)
