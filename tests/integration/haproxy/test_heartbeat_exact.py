"""Heartbeat counters add up end to end: what a client counted on its side
equals the sum of the deltas a receiver got, across reloads during the
traffic, an agent restart and a killed heartbeat process; member states
(DOWN, DRAIN, MAINT) as the heartbeat reports them.

The client runs in its own namespace, wired by a veth to the amphora's VIP
as on the fabric: what it counts crossed a real link into the LB's
namespace, where HAProxy listens on the VIP and the member on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from amphora_contract import heartbeat, netns
from controller_stub import haproxy_cli
from controller_stub.local_agent import Pki, RunningAgent, free_port, short_tmpdir, start_agent
from controller_stub.octavia_style import OctaviaStyleConfig
from tests.integration.agent.test_process_model import _roles
from tests.support import namespaces

KEY = "exact-counters-key"
MASTER_KEY = "exact-counters-master-key"
VIP, CLIENT_IP = "203.0.113.10", "203.0.113.20"
REQUEST = b"GET / HTTP/1.1\r\nHost: m\r\n\r\n"
LAST_REQUEST = b"GET / HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n"


def _wait_for(condition, what: str, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


class Receiver:
    """A plain UDP socket and the contract's unwrap; sums the deltas per listener.

    A sequence number seen before is dropped, as a version-4 receiver does
    (a sender killed between sendto and persisting sends its last one again).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        # version 3 with the shared key, version 4 with keys derived from the master
        self.verifier = heartbeat.HeartbeatVerifier(v3_key=KEY, master_key=MASTER_KEY)
        self.rejected: dict[str, int] = {}
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.lock = threading.Lock()
        self.totals: dict[str, dict[str, int]] = {}
        self.seqs: list[int] = []
        self.duplicates = 0
        self.trace: list = []  # (seq, time, totconns per listener): shown when a sum is off
        self.latest: dict = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            try:
                body = self.verifier.verify(data)
            except heartbeat.HeartbeatError as exc:
                with self.lock:
                    self.rejected[exc.reason.value] = self.rejected.get(exc.reason.value, 0) + 1
                continue
            with self.lock:
                if body["seq"] in self.seqs:  # version 3 has no replay protection
                    self.duplicates += 1
                    continue
                self.seqs.append(body["seq"])
                self.trace.append((body["seq"], round(time.time() % 100, 2), {
                    k: v["stats"]["totconns"] for k, v in body["listeners"].items()}))
                self.latest = body
                for listener, entry in body["listeners"].items():
                    total = self.totals.setdefault(listener, dict.fromkeys(
                        ("tx", "rx", "totconns", "ereq"), 0))
                    for name in total:
                        total[name] += entry["stats"][name]

    def count(self) -> int:
        with self.lock:
            return len(self.seqs)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


@dataclass
class ClientCounts:
    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: int = 0
    requests: int = 0
    sent: int = 0
    received: int = 0
    errors: list[str] = field(default_factory=list)


def _traffic(ns: str, address: tuple[str, int], counts: ClientCounts, stop: threading.Event,
             worker: int) -> None:
    """Connections of 1..6 keep-alive requests each; each byte counted on this side."""
    n = worker
    while not stop.is_set():
        n += 1
        requests = 1 + n % 6
        sent = received = 0
        try:
            with netns.entered(ns):
                conn = socket.create_connection(address, timeout=10)
            with conn:
                for i in range(requests):
                    last = i == requests - 1
                    data = LAST_REQUEST if last else REQUEST
                    conn.sendall(data)
                    sent += len(data)
                    reply = b""
                    while not reply.endswith(b"member-127.0.0.11"):
                        chunk = conn.recv(65536)
                        if not chunk:
                            raise ConnectionError("closed early")
                        reply += chunk
                    received += len(reply)
                    if not last and n % 3 == 0:
                        stop.wait(0.05)  # a slow client: sessions that span a reload
                # the member closes after "Connection: close": read to the end
                while chunk := conn.recv(65536):
                    received += len(chunk)
        except OSError as exc:
            with counts.lock:
                counts.errors.append(repr(exc))
            return
        with counts.lock:
            counts.connections += 1
            counts.requests += requests
            counts.sent += sent
            counts.received += received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


@pytest.fixture
def agent(pki: Pki, lb_namespace: str, receiver: Receiver) -> Iterator[RunningAgent]:
    root = short_tmpdir()
    running = start_agent(root, pki, amphora={"namespace": lb_namespace},
                          controllers=[receiver.address], heartbeat_interval=1,
                          heartbeat_key=KEY)
    yield running
    running.process.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def client_namespace(lb_namespace: str) -> Iterator[str]:
    """The client's own namespace, a veth away from the VIP in the LB's."""
    with namespaces.namespace() as name:
        namespaces.link(name, f"{CLIENT_IP}/24", lb_namespace, f"{VIP}/24")
        yield name


def _link_bytes(ns: str, ifname: str = "eth1") -> dict[str, int]:
    out = subprocess.run(["ip", "-n", ns, "-j", "-s", "link", "show", ifname],
                         capture_output=True, text=True, check=True).stdout
    stats = json.loads(out)[0]["stats64"]
    return {"tx": stats["tx"]["bytes"], "rx": stats["rx"]["bytes"]}


def _lb(agent: RunningAgent, member_port: int, members: list[tuple[str, str]] | None = None,
        mode: str = "tcp", vip: str = "127.0.0.1") -> OctaviaStyleConfig:
    return OctaviaStyleConfig(
        amphora_id=agent.amphora_id, lb_id=str(uuid.uuid4()), listener_id=str(uuid.uuid4()),
        pool_id=str(uuid.uuid4()), base_path=str(agent.base_path),
        bind=f"{vip}:{free_port()}", mode=mode,
        members=members or [(str(uuid.uuid4()), f"127.0.0.11:{member_port}")])


def use_version_4(agent: RunningAgent) -> None:
    """PUT /1.0/config: version 4 with this amphora's derived key."""
    text = agent.config_file.read_text()
    key = heartbeat.derive_amphora_key(MASTER_KEY, agent.amphora_id)
    assert f"heartbeat_key = {KEY}\n" in text and "[amphora]\n" in text
    text = text.replace(f"heartbeat_key = {KEY}\n", f"heartbeat_key = {key}\n")
    text = text.replace("[amphora]\n", "[amphora]\nheartbeat_version = 4\n")
    with agent.client() as client:
        client.put_config(text)


@pytest.mark.parametrize("version", [3, 4])
def test_deltas_add_up_across_reloads_and_restarts(agent: RunningAgent, lb_namespace: str,
                                                   client_namespace: str, receiver: Receiver,
                                                   version: int) -> None:
    if version == 4:
        use_version_4(agent)
        _wait_for(lambda: receiver.latest.get("ver") == 4, "a version-4 heartbeat")
    member_port = free_port()
    member = namespaces.Member(lb_namespace, "127.0.0.11", member_port, "member-127.0.0.11")
    cfg = _lb(agent, member_port, vip=VIP)
    port = int(cfg.bind.rpartition(":")[2])
    master = str(agent.base_path / cfg.lb_id / "master.sock")
    counts, stop = ClientCounts(), threading.Event()
    clients: list[threading.Thread] = []
    try:
        with agent.client() as client:
            client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
            client.lb_action(cfg.lb_id, "start")
            clients = [threading.Thread(target=_traffic, args=(
                client_namespace, (VIP, port), counts, stop, i), daemon=True) for i in range(3)]
            for thread in clients:
                thread.start()
            _wait_for(lambda: counts.connections > 20, "traffic")

            carried = 0  # reloads after which an old worker still held sessions
            for _ in range(5):
                before = haproxy_cli.show_proc(master).reloads
                client.lb_action(cfg.lb_id, "reload")
                table = _wait_for(lambda b=before: (t := haproxy_cli.show_proc(master)).reloads
                                  > b and t, "the reload")
                carried += bool(table.old_workers)
                seen = counts.connections
                _wait_for(lambda s=seen: counts.connections > s + 10, "traffic after a reload")
            # the agent restarts (heartbeat process with it), traffic keeps flowing
            _wait_for(lambda: not haproxy_cli.show_proc(master).old_workers,
                      "old workers to drain")
            agent.process.stop()
            agent.process.start()
            agent.process.wait_ready(client)
            sent_before = receiver.count()
            _wait_for(lambda: receiver.count() > sent_before + 1, "heartbeats after the restart")
            # the heartbeat process alone is killed and replaced
            hb = _wait_for(lambda: _roles(agent.process.pid)[0], "the heartbeat process")
            os.kill(hb, signal.SIGKILL)
            _wait_for(lambda: (p := _roles(agent.process.pid)[0]) and p != hb,
                      "a new heartbeat process")
            sent_before = receiver.count()
            _wait_for(lambda: receiver.count() > sent_before + 1, "heartbeats after the kill")
            stop.set()
            for thread in clients:
                thread.join(15)
            assert not counts.errors, counts.errors[:3]
            assert counts.connections > 100 and carried > 0, (counts, carried)
            # the requests and replies crossed the veth: it carried at least their bytes
            carried_bytes = _link_bytes(client_namespace)
            assert carried_bytes["tx"] > counts.sent and carried_bytes["rx"] > counts.received

            def adds_up() -> bool:
                with receiver.lock:
                    got = receiver.totals.get(cfg.listener_id, {})
                return got == {"totconns": counts.connections, "rx": counts.sent,
                               "tx": counts.received, "ereq": 0}
            try:
                _wait_for(adds_up, "heartbeats to add up")
            except AssertionError:
                raise AssertionError(
                    f"client {counts}, receiver {receiver.totals}, rejected {receiver.rejected}, "
                    f"trace {receiver.trace}\n{agent.process.log_tail(60)}") from None
            # and stay there: nothing is reported twice
            settled = receiver.count()
            _wait_for(lambda: receiver.count() > settled + 1, "two more heartbeats")
            assert adds_up(), (counts, receiver.totals)
            assert receiver.seqs == sorted(receiver.seqs), receiver.seqs
            assert receiver.latest["ver"] == version
            assert set(receiver.rejected) <= {"replayed"}, receiver.rejected
            client.delete_listener(cfg.lb_id)
    finally:
        stop.set()
        for thread in clients:
            thread.join(15)
        member.close()


def _member_state(receiver: Receiver, backend: str, member_id: str) -> str | None:
    with receiver.lock:
        return receiver.latest.get("pools", {}).get(backend, {}).get("members", {}).get(
            member_id)


def test_member_down_drain_and_maint_in_heartbeats(agent: RunningAgent, lb_namespace: str,
                                                   receiver: Receiver) -> None:
    ports = [free_port(), free_port()]
    servers = [namespaces.Member(lb_namespace, "127.0.0.11", p, "member-127.0.0.11")
               for p in ports]
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    cfg = _lb(agent, 0, members=[(ids[0], f"127.0.0.11:{ports[0]}"),
                                 (ids[1], f"127.0.0.11:{ports[1]}")], mode="http")
    backend = f"{cfg.pool_id}:{cfg.listener_id}"
    try:
        with agent.client() as client:
            client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
            client.lb_action(cfg.lb_id, "start")
            _wait_for(lambda: [_member_state(receiver, backend, m) for m in ids] == ["UP", "UP"],
                      "both members UP")
            # the rendered health monitor: check inter 1s fall 2
            fall_window = 2 * 1.0
            servers[0].close()
            stopped = time.monotonic()
            _wait_for(lambda: _member_state(receiver, backend, ids[0]) == "DOWN",
                      "the stopped member DOWN")
            # detection within the fall window, reported by the next heartbeat (1 s)
            assert time.monotonic() - stopped <= fall_window + 1.0 + 1.0
            assert _member_state(receiver, backend, ids[1]) == "UP"

            assert client.set_server(cfg.lb_id, backend, ids[1], state="drain") == "runtime"
            _wait_for(lambda: _member_state(receiver, backend, ids[1]) == "DRAIN", "DRAIN")
            assert client.set_server(cfg.lb_id, backend, ids[1], state="maint") == "runtime"
            _wait_for(lambda: _member_state(receiver, backend, ids[1]) == "MAINT", "MAINT")
            assert client.set_server(cfg.lb_id, backend, ids[1], state="ready") == "runtime"
            _wait_for(lambda: _member_state(receiver, backend, ids[1]) == "UP", "UP again")
            client.delete_listener(cfg.lb_id)
    finally:
        for server in servers[1:]:
            server.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_heartbeats_reach_ipv4_and_ipv6_controllers_in_turn(pki: Pki, host: str) -> None:
    first, second = Receiver(host), Receiver(host)
    root = short_tmpdir()
    agent = start_agent(root, pki, controllers=[first.address, second.address],
                        heartbeat_interval=1, heartbeat_key=KEY)
    try:
        _wait_for(lambda: first.count() >= 2 and second.count() >= 2, "heartbeats to both")
        seqs = sorted(first.seqs[:2] + second.seqs[:2])
        assert seqs == list(range(seqs[0], seqs[0] + 4))  # round robin, one each in turn
        assert set(first.seqs[:2]).isdisjoint(second.seqs[:2])
    finally:
        agent.process.stop()
        first.close()
        second.close()
        shutil.rmtree(root, ignore_errors=True)
