"""Heartbeat contents from real HAProxy: statuses, and counters as deltas
that keep what a draining old worker carries after a reload."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid

from amphora_agent import health
from amphora_contract import agent_config, netns
from controller_stub import haproxy_cli
from controller_stub.local_agent import RunningAgent, free_port
from controller_stub.octavia_style import OctaviaStyleConfig
from tests.support import namespaces


def _request(sock: socket.socket) -> bytes:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: m\r\n\r\n")
    data = b""
    while not data.endswith(b"member-127.0.0.11"):
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        data += chunk
    return data


def _collect(agent: RunningAgent) -> tuple[dict, dict]:
    return health.collect_stats(agent_config.load(agent.config_file))


def _wait_for(condition, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _sessions(master: str, pid: int, frontend: str) -> int:
    """Current sessions of one worker's frontend, read from HAProxy itself
    (not through collect_stats, which would consume the counters' deltas)."""
    rows = haproxy_cli.show_stat(master, f"@!{pid} ")
    return int(next(r["scur"] for r in rows
                    if r["pxname"] == frontend and r["svname"] == "FRONTEND"))


def test_statuses_and_deltas_across_a_reload(agent: RunningAgent, lb_namespace: str) -> None:
    member_port = free_port()
    member = namespaces.Member(lb_namespace, "127.0.0.11", member_port, "member-127.0.0.11")
    down_id, up_id = str(uuid.uuid4()), str(uuid.uuid4())
    port = free_port()
    cfg = OctaviaStyleConfig(
        amphora_id=agent.amphora_id, lb_id=str(uuid.uuid4()), listener_id=str(uuid.uuid4()),
        pool_id=str(uuid.uuid4()), base_path=str(agent.base_path),
        bind=f"127.0.0.1:{port}", mode="tcp",
        members=[(up_id, f"127.0.0.11:{member_port}"), (down_id, "127.0.0.99:9")])
    backend = f"{cfg.pool_id}:{cfg.listener_id}"
    try:
        with agent.client() as client:
            client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
            client.lb_action(cfg.lb_id, "start")
            deadline = time.monotonic() + 10
            while True:
                listeners, pools = _collect(agent)
                members = pools.get(backend, {}).get("members", {})
                if members.get(up_id) == "UP" and members.get(down_id) == "DOWN":
                    break
                assert time.monotonic() < deadline, pools
                time.sleep(0.2)
            assert pools[backend]["status"] == "UP"
            assert listeners[cfg.listener_id]["status"] == "OPEN"
            _collect(agent)  # baseline

            with netns.entered(lb_namespace):
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                keeper = socket.create_connection(("127.0.0.1", port), timeout=5)
            try:
                first = _request(conn)
                _request(keeper)
                listeners, _ = _collect(agent)
                stats = listeners[cfg.listener_id]["stats"]
                assert stats["totconns"] == 2 and stats["conns"] == 2

                client.lb_action(cfg.lb_id, "reload")
                master = str(agent.base_path / cfg.lb_id / "master.sock")
                # TCP sessions stay with the old worker; `keeper` keeps it alive
                (old_pid,) = haproxy_cli.show_proc(master).old_workers
                assert _sessions(master, old_pid, cfg.listener_id) == 2
                # HAProxy adds a TCP session's bytes when it ends, here in the
                # old worker: reading only the new worker's socket, as
                # upstream does, never sees them
                conn.close()
                _wait_for(lambda: _sessions(master, old_pid, cfg.listener_id) == 1,
                          "the old worker to end the closed session")
                listeners, _ = _collect(agent)
                stats = listeners[cfg.listener_id]["stats"]
                assert stats["tx"] >= len(first) and stats["rx"] > 0, stats
                assert stats["totconns"] == 0 and stats["conns"] == 1
            finally:
                conn.close()
                keeper.close()
            # the next heartbeat reports nothing new: the old worker's last
            # session ended with `keeper`, and the worker exits with it
            _wait_for(lambda: not haproxy_cli.show_proc(master).old_workers,
                      "the old worker to exit")
            listeners, _ = _collect(agent)
            assert listeners[cfg.listener_id]["stats"]["tx"] == 0

            # deltas persist across an agent restart: counters live in the state file
            with netns.entered(lb_namespace):
                fresh = socket.create_connection(("127.0.0.1", port), timeout=5)
            _request(fresh)
            fresh.close()
            agent.process.stop()
            agent.process.start()
            agent.process.wait_ready(client)
            listeners, _ = _collect(agent)
            assert listeners[cfg.listener_id]["stats"]["totconns"] == 1
            client.delete_listener(cfg.lb_id)
    finally:
        member.close()


def test_heartbeat_silent_when_vrrp_configured_but_keepalived_down(
        agent: RunningAgent, lb_namespace: str) -> None:
    config = agent_config.load(agent.config_file)
    assert health.should_send_heartbeat(config)
    vrrp = agent.base_path / "vrrp"
    vrrp.mkdir(parents=True)
    conf = vrrp / "octavia-keepalived.conf"  # the name Octavia's agent uses
    conf.write_text("global_defs {\n    router_id amphora\n}\n")
    assert not health.should_send_heartbeat(config)
    # control: with keepalived running that config, heartbeats go again
    keepalived = subprocess.Popen(
        ["ip", "netns", "exec", lb_namespace, "/usr/sbin/keepalived", "--dont-fork",
         "--log-console", "-f", str(conf), "-p", str(vrrp / "k.pid"),
         "-r", str(vrrp / "v.pid"), "-c", str(vrrp / "c.pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: health.should_send_heartbeat(config), "keepalived to be seen")
    finally:
        keepalived.terminate()
        keepalived.wait(10)
    _wait_for(lambda: not health.should_send_heartbeat(config), "keepalived to be gone")
