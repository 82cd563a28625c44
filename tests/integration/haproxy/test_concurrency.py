"""One change at a time per load balancer: concurrent requests against the
real agent (one client per thread, released together by a barrier) must
never lose, revert or half-apply each other's work."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from controller_stub.client import AgentError, BadRequest, NotFound
from controller_stub.local_agent import RunningAgent, free_port
from controller_stub.octavia_style import OctaviaStyleConfig
from tests.support import namespaces

ROUNDS = 3


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _together(agent: RunningAgent, *calls: Callable[[Any], Any]) -> list[Outcome]:
    """Run each call in its own thread with its own agent client, all released
    at once; returns their outcomes once every thread has finished."""
    barrier = threading.Barrier(len(calls))
    outcomes = [Outcome() for _ in calls]

    def run(call: Callable[[Any], Any], outcome: Outcome) -> None:
        try:
            with agent.client(retries=0) as client:
                client.info()  # connected before the barrier
                barrier.wait(timeout=30)
                outcome.value = call(client)
        except BaseException as exc:  # reported by the asserting thread
            outcome.error = exc
        finally:
            outcome.done.set()

    threads = [threading.Thread(target=run, args=(c, o)) for c, o in zip(calls, outcomes,
                                                                         strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(o.done.is_set() for o in outcomes), "a request never finished"
    return outcomes


def _config(agent: RunningAgent, lb_id: str, port: int, body: str) -> OctaviaStyleConfig:
    return OctaviaStyleConfig(
        amphora_id=agent.amphora_id, lb_id=lb_id, listener_id=str(uuid.uuid4()),
        pool_id=str(uuid.uuid4()), base_path=str(agent.base_path),
        bind=f"127.0.0.1:{port}", body=body)


def _render(cfg: OctaviaStyleConfig, level: str = "admin") -> str:
    return cfg.render().replace("level admin", f"level {level}")


def _served(ns: str, port: int) -> bytes:
    status, body = namespaces.http_get(ns, "127.0.0.1", port)
    assert status == 200
    return body


def test_concurrent_uploads_end_on_one_of_them_and_haproxy_serves_it(
        agent: RunningAgent, lb_namespace: str) -> None:
    """Valid and invalid uploads of a new LB at once: a failed upload must not
    remove the config a concurrent one installed, and the final config is one
    of the valid uploads, which the running HAProxy serves."""
    for _round in range(ROUNDS):
        _uploads_round(agent, lb_namespace)


def _uploads_round(agent: RunningAgent, lb_namespace: str) -> None:
    lb_id = str(uuid.uuid4())
    port = free_port()
    valid = {f"v{i}": _render(_config(agent, lb_id, port, f"v{i}")) for i in range(2)}
    invalid = _render(_config(agent, lb_id, port, "bad")).replace(
        "balance roundrobin", "balance no-such-algorithm")

    def upload_and_reload(text: str) -> Callable[[Any], Any]:
        def call(client: Any) -> str:
            client.upload_haproxy(agent.amphora_id, lb_id, text)
            return client.lb_action(lb_id, "reload")["details"]
        return call

    def upload_invalid(client: Any) -> None:
        with pytest.raises(BadRequest):
            client.upload_haproxy(agent.amphora_id, lb_id, invalid)

    outcomes = _together(agent, *(upload_and_reload(t) for t in valid.values()),
                         upload_invalid, upload_invalid)
    assert [o.error for o in outcomes] == [None] * len(outcomes)
    with agent.client() as client:
        final = client.get_haproxy(lb_id)
    assert final in valid.values()
    body = next(name for name, text in valid.items() if text == final)
    assert _served(lb_namespace, port) == body.encode()
    with agent.client() as client:
        client.delete_listener(lb_id)


def test_upload_racing_delete_is_all_or_nothing(agent: RunningAgent,
                                                lb_namespace: str) -> None:
    """Either the delete came last and nothing of the LB is left, or the
    upload came last and it is fully installed and starts; never half."""
    for _round in range(ROUNDS):
        _delete_round(agent, lb_namespace)


def _delete_round(agent: RunningAgent, lb_namespace: str) -> None:
    lb_id = str(uuid.uuid4())
    port = free_port()
    first = _render(_config(agent, lb_id, port, "first"))
    second = _render(_config(agent, lb_id, port, "second"))
    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, lb_id, first)
        client.lb_action(lb_id, "start")
    outcomes = _together(
        agent, lambda c: c.upload_haproxy(agent.amphora_id, lb_id, second),
        lambda c: c.delete_listener(lb_id))
    assert [o.error for o in outcomes] == [None, None]
    directory = agent.base_path / lb_id
    with agent.client() as client:
        try:
            installed = client.get_haproxy(lb_id)
        except NotFound:
            installed = None
        if installed is None:
            assert not directory.exists(), sorted(p.name for p in directory.iterdir())
            assert client.listeners() == []
            return
        assert installed == second
        assert (directory / "amphora-id").read_text() == agent.amphora_id
        client.lb_action(lb_id, "start")
        assert _served(lb_namespace, port) == b"second"
        client.delete_listener(lb_id)


def test_concurrent_member_changes_are_all_kept(agent: RunningAgent,
                                                lb_namespace: str) -> None:
    """Member changes applied with a reload (stats socket without ``level
    admin``) read, edit and install the config: each must see the others'."""
    lb_id = str(uuid.uuid4())
    port = free_port()
    member_port = free_port()
    cfg = _config(agent, lb_id, port, "members")
    cfg.members = [(str(uuid.uuid4()), f"127.0.0.11:{member_port}")]
    backend = f"{cfg.pool_id}:{cfg.listener_id}"
    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, lb_id, _render(cfg, "user"))
        client.lb_action(lb_id, "start")
    added = [str(uuid.uuid4()) for _ in range(4)]

    def add(server: str, last_octet: int) -> Callable[[Any], Any]:
        return lambda c: c.set_server(lb_id, backend, server, address=f"127.0.0.{last_octet}",
                                      port=member_port)

    outcomes = _together(agent, *(add(s, 20 + i) for i, s in enumerate(added)))
    assert [o.error for o in outcomes] == [None] * len(added)
    assert [o.value for o in outcomes] == ["reload"] * len(added)
    with agent.client() as client:
        final = client.get_haproxy(lb_id)
        listed = {s["name"] for s in client.list_servers(lb_id, backend)}
    for server in added:
        assert f"server {server} " in final
    assert set(added) <= listed
    assert _served(lb_namespace, port) == b"members"


def test_member_change_racing_an_upload_does_not_revert_it(agent: RunningAgent,
                                                           lb_namespace: str) -> None:
    """A member change must edit the config installed when it runs, not the
    one it read before a concurrent upload replaced it."""
    for _round in range(ROUNDS):
        _member_upload_round(agent, lb_namespace)


def _member_upload_round(agent: RunningAgent, lb_namespace: str) -> None:
    lb_id = str(uuid.uuid4())
    port = free_port()
    member_port = free_port()
    members = [(str(uuid.uuid4()), f"127.0.0.11:{member_port}")]
    old = _config(agent, lb_id, port, "old")
    old.members = members
    new = _config(agent, lb_id, port, "new")
    new.listener_id, new.pool_id, new.members = old.listener_id, old.pool_id, members
    backend = f"{old.pool_id}:{old.listener_id}"
    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, lb_id, _render(old, "user"))
        client.lb_action(lb_id, "start")
    servers = [str(uuid.uuid4()) for _ in range(3)]

    def upload(client: Any) -> str:
        client.upload_haproxy(agent.amphora_id, lb_id, _render(new, "user"))
        return client.lb_action(lb_id, "reload")["details"]

    def add(server: str, last_octet: int) -> Callable[[Any], Any]:
        return lambda c: c.set_server(lb_id, backend, server,
                                      address=f"127.0.0.{last_octet}", port=member_port)

    outcomes = _together(agent, upload, *(add(s, 30 + i) for i, s in enumerate(servers)))
    errors = [o.error for o in outcomes]
    assert errors == [None] * len(outcomes), [
        e.body if isinstance(e, AgentError) else e for e in errors]
    with agent.client() as client:
        final = client.get_haproxy(lb_id)
    assert "string new" in final and "string old" not in final
    assert _served(lb_namespace, port) == b"new"
    with agent.client() as client:
        client.delete_listener(lb_id)
