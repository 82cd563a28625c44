"""Hostile requests against a running agent over mutual TLS.

For every endpoint of amphora_agent/openapi.yaml that takes input: control
characters, traversal, oversize and chunked bodies, wrong types and
concurrent conflicting requests. Each attack must get a 4xx (JSON), leave
nothing outside the agent's directories (a sentinel directory, which the
attacks aim at, is compared byte for byte), leave the agent's own files as
they were, and leave the HAProxy of an existing load balancer running with
the same processes and config.

Requests go over raw ``http.client`` connections so that paths, headers and
chunked bodies reach the agent exactly as written.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller_stub.local_agent import Pki, RunningAgent, free_port, short_tmpdir, start_agent
from controller_stub.octavia_style import OctaviaStyleConfig
from tests.support import namespaces

LIMIT = 64 * 1024
PEM = (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")


@dataclass
class World:
    agent: RunningAgent
    namespace: str
    victim: OctaviaStyleConfig
    victim_port: int
    sentinel: Path
    root: Path

    @property
    def victim_dir(self) -> Path:
        return self.agent.base_path / self.victim.lb_id


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def world(pki: Pki) -> Iterator[World]:
    """One agent with a running LB (the victim) and a sentinel directory outside."""
    root, sentinel = short_tmpdir(), short_tmpdir()
    (sentinel / "sentinel.txt").write_text("untouched\n")
    ns = namespaces.create()
    try:
        agent = start_agent(root, pki, amphora={"namespace": ns,
                                                "max_body_size": str(LIMIT)})
        try:
            port = free_port()
            victim = OctaviaStyleConfig(
                amphora_id=agent.amphora_id, lb_id=str(uuid.uuid4()),
                listener_id=str(uuid.uuid4()), pool_id=str(uuid.uuid4()),
                base_path=str(agent.base_path), bind=f"127.0.0.1:{port}", body="victim")
            with agent.client() as client:
                client.upload_haproxy(agent.amphora_id, victim.lb_id, victim.render())
                client.lb_action(victim.lb_id, "start")
            yield World(agent, ns, victim, port, sentinel, root)
        finally:
            agent.process.stop()
    finally:
        namespaces.destroy(ns)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(sentinel, ignore_errors=True)


# -- observing ------------------------------------------------------------------

def snapshot(top: Path) -> dict[str, str]:
    """Every entry under ``top``: files by mode and content hash, sockets and
    directories by kind. Symlinks are not followed; the agent's own log
    (``*.log``, written by the test harness) and its metrics counters (a refused
    config is counted as a validation failure) are left out."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if (name.endswith(".log") or name.startswith("agent-metrics.")) and path.is_file():
                continue
            st = path.lstat()
            rel = str(path.relative_to(top))
            if path.is_symlink():
                found[rel] = f"link->{os.readlink(path)}"
            elif path.is_file():
                found[rel] = f"{st.st_mode:o}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
            else:
                found[rel] = f"{st.st_mode:o}"
    return found


def haproxy_processes(world: World) -> tuple[int, tuple[int, ...]]:
    """(master pid, worker pids) of the victim, from its pid file and /proc."""
    master = int((world.victim_dir / "haproxy.pid").read_text().split()[0])
    children: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        children += [int(p) for p in (task / "children").read_text().split()]
    return master, tuple(sorted(children))


@pytest.fixture
def untouched(world: World) -> Iterator[None]:
    """The attack must leave the sentinel, the agent's files and HAProxy as they were."""
    sentinel, agent_files = snapshot(world.sentinel), snapshot(world.root)
    processes = haproxy_processes(world)
    yield
    assert snapshot(world.sentinel) == sentinel
    assert snapshot(world.root) == agent_files
    assert haproxy_processes(world) == processes
    assert (world.victim_dir / "haproxy.cfg").read_text() == world.victim.render()
    assert namespaces.http_get(world.namespace, "127.0.0.1", world.victim_port) == (
        200, b"victim")


# -- speaking -------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    body: Any


def send(world: World, method: str, path: str, body: bytes | None = None, *,
         chunked: bool = False, chunk_size: int = 4096,
         headers: dict[str, str] | None = None) -> Reply:
    ctx = world.agent.client_context()
    ctx.check_hostname = False
    conn = http.client.HTTPSConnection(world.agent.host, world.agent.port, context=ctx,
                                       timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            data = body or b""
            for start in range(0, len(data), chunk_size):
                piece = data[start:start + chunk_size]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        else:
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    return Reply(response.status, json.loads(raw) if raw else None)


def assert_refused(reply: Reply, *statuses: int) -> None:
    assert 400 <= reply.status < 500, reply
    assert isinstance(reply.body, dict), reply  # always a JSON error
    if statuses:
        assert reply.status in statuses, reply


def body_endpoints(world: World) -> list[tuple[str, str]]:
    lb, amp = world.victim.lb_id, world.agent.amphora_id
    backend = f"{world.victim.pool_id}:{world.victim.listener_id}"
    return [
        ("PUT", "/1.0/config"),
        ("PUT", "/1.0/certificate"),
        ("PUT", f"/1.0/loadbalancer/{lb}/certificates/victim.pem"),
        ("PUT", f"/1.0/loadbalancer/{amp}/{lb}/haproxy"),
        ("POST", "/1.0/plug/vip/192.0.2.10"),
        ("POST", "/1.0/plug/network"),
        ("PUT", "/1.0/interface/192.0.2.10/rules"),
        ("PUT", f"/1.0/ext/loadbalancer/{lb}/backends/{backend}/servers/attacker"),
    ]


def _endpoint_ids() -> list[str]:
    return ["config", "certificate", "lb-certificate", "haproxy-config", "plug-vip",
            "plug-network", "interface-rules", "member"]


# -- oversize bodies ----------------------------------------------------------------

@pytest.mark.parametrize("index", range(8), ids=_endpoint_ids())
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversize_body_is_413_on_every_endpoint(world: World, untouched: None, index: int,
                                                chunked: bool) -> None:
    method, path = body_endpoints(world)[index]
    # A valid-looking start so that a truncated read would pass validation.
    body = PEM + b"#" * (LIMIT + 1)
    reply = send(world, method, path, body, chunked=chunked)
    assert reply.status == 413, reply
    assert reply.body["http_code"] == 413


def test_chunked_bodies_are_whole_or_413(world: World) -> None:
    lb = str(uuid.uuid4())
    path = f"/1.0/loadbalancer/{lb}/certificates/whole.pem"
    body = PEM + b"\n" * (LIMIT - len(PEM) - 1)
    assert send(world, "PUT", path, body + b"\n" * 2, chunked=True).status == 413
    assert not (world.agent.cert_dir / lb).exists()
    reply = send(world, "PUT", path, body, chunked=True, chunk_size=1000)
    assert reply.status == 200, reply
    stored = world.agent.cert_dir / lb / "whole.pem"
    assert stored.read_bytes() == body
    assert send(world, "DELETE", f"/1.0/listeners/{lb}").status == 200
    assert not stored.exists()


# -- control characters and traversal in paths ---------------------------------------

def hostile_paths(world: World) -> list[tuple[str, str, bytes | None]]:
    lb, amp = world.victim.lb_id, world.agent.amphora_id
    backend = f"{world.victim.pool_id}:{world.victim.listener_id}"
    rel = os.path.relpath(world.sentinel, world.agent.cert_dir / lb)
    up = rel.replace("/", "%2F")
    return [
        ("PUT", f"/1.0/loadbalancer/{lb}/certificates/x%0A.pem", PEM),
        ("PUT", f"/1.0/loadbalancer/{lb}/certificates/{rel}/evil.pem", PEM),
        ("PUT", f"/1.0/loadbalancer/{lb}/certificates/{up}%2Fevil.pem", PEM),
        ("PUT", f"/1.0/loadbalancer/{lb}/certificates/..%2F..%2Fevil.pem", PEM),
        ("PUT", f"/1.0/loadbalancer/{lb}/certificates/.hidden.pem", PEM),
        ("PUT", f"/1.0/loadbalancer/{lb}%0A/certificates/x.pem", PEM),
        ("PUT", f"/1.0/loadbalancer/..%2F..%2F{up}/certificates/x.pem", PEM),
        ("GET", f"/1.0/loadbalancer/{lb}/certificates/..%2F{lb}%2F..%2F..%2Fconfig.pem", None),
        ("DELETE", f"/1.0/loadbalancer/{lb}/certificates/..%2F..%2F..%2Fsentinel.pem", None),
        ("PUT", f"/1.0/loadbalancer/{amp}/{lb}%0A/haproxy", b"global\n"),
        ("PUT", f"/1.0/loadbalancer/{amp}%0A/{lb}/haproxy", b"global\n"),
        ("PUT", f"/1.0/loadbalancer/{amp}/..%2F{up}/haproxy", b"global\n"),
        ("GET", f"/1.0/loadbalancer/{lb}%0D%0A/haproxy", None),
        ("PUT", f"/1.0/loadbalancer/{lb}/reload%0A", None),
        ("PUT", f"/1.0/loadbalancer/{lb}/stop%00", None),
        ("PUT", f"/1.0/loadbalancer/{lb}/..%2F..%2Freload", None),
        ("DELETE", f"/1.0/listeners/{lb}%0A", None),
        ("DELETE", f"/1.0/listeners/..%2F{lb}", None),
        ("DELETE", f"/1.0/listeners/%7B{lb}%7D", None),
        ("POST", "/1.0/plug/vip/192.0.2.10%0A", b"{}"),
        ("POST", "/1.0/plug/vip/..%2F..%2Fetc", b"{}"),
        ("GET", "/1.0/interface/192.0.2.10%0A", None),
        ("PUT", "/1.0/interface/192.0.2.10%0A/rules", b"[]"),
        ("GET", f"/1.0/ext/loadbalancer/{lb}/backends/{backend}%0Abackend%20x/servers", None),
        ("PUT", f"/1.0/ext/loadbalancer/{lb}/backends/{backend}/servers/s%0Aserver%20x",
         b'{"weight": 1}'),
        ("PUT", f"/1.0/ext/loadbalancer/{lb}/backends/..%2F..%2Fx/servers/s", b'{"weight": 1}'),
        ("DELETE", f"/1.0/ext/loadbalancer/{lb}/backends/{backend}/servers/..%2F..", None),
    ]


@pytest.mark.parametrize("index", range(27))
def test_control_characters_and_traversal_in_paths_are_refused(world: World,
                                                               untouched: None,
                                                               index: int) -> None:
    cases = hostile_paths(world)
    assert len(cases) == 27
    method, path, body = cases[index]
    assert_refused(send(world, method, path, body))


# -- uploaded configs naming files outside the LB ------------------------------------

def outside_configs(world: World, lb_id: str) -> list[str]:
    s, base = world.sentinel, world.agent.base_path
    other = world.victim.lb_id if lb_id != world.victim.lb_id else str(uuid.uuid4())
    certs = world.agent.cert_dir / lb_id
    rel_up = os.path.relpath(s, base / lb_id)
    extras = [
        f"stats socket {s}/evil.sock mode 600 level admin",
        f"pidfile {s}/evil.pid",
        f"server-state-file {base}/{lb_id}/{rel_up}/evil.state",
        f"stats socket {base}/{other}.sock mode 600 level admin",  # another LB's socket
        f"pidfile {base}/{other}/haproxy.cfg",  # another LB's config
        f"log {s}/log local0",
        "lua-load /tmp/evil.lua",
        "setenv LD_PRELOAD /tmp/evil.so",
    ]
    configs = []
    for extra in extras:
        cfg = OctaviaStyleConfig(
            amphora_id=world.agent.amphora_id, lb_id=lb_id, listener_id=str(uuid.uuid4()),
            pool_id=str(uuid.uuid4()), base_path=str(base), bind=f"127.0.0.1:{free_port()}",
            extra_global=[extra])
        configs.append(cfg.render())
    frontend = [f"bind 127.0.0.1:{free_port()} ssl crt {s}/sentinel.txt",
                f"errorfile 503 {s}/sentinel.txt",
                f"http-request return status 200 file {s}/sentinel.txt",
                f"acl a src -f {s}/sentinel.txt",
                f"bind 127.0.0.1:{free_port()} ssl crt {certs}/{rel_up}/x.pem"]
    for line in frontend:
        cfg = OctaviaStyleConfig(
            amphora_id=world.agent.amphora_id, lb_id=lb_id, listener_id=str(uuid.uuid4()),
            pool_id=str(uuid.uuid4()), base_path=str(base), bind=f"127.0.0.1:{free_port()}",
            extra_frontend=[line])
        configs.append(cfg.render())
    return configs


@pytest.mark.parametrize("index", range(13))
@pytest.mark.parametrize("target", ["new", "victim"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_config_naming_files_outside_the_lb_is_a_400(world: World, untouched: None,
                                                    index: int, target: str,
                                                    chunked: bool) -> None:
    lb_id = world.victim.lb_id if target == "victim" else str(uuid.uuid4())
    configs = outside_configs(world, lb_id)
    assert len(configs) == 13
    reply = send(world, "PUT", f"/1.0/loadbalancer/{world.agent.amphora_id}/{lb_id}/haproxy",
                 configs[index].encode(), chunked=chunked)
    assert_refused(reply, 400)
    assert not (world.agent.base_path / lb_id).exists() or target == "victim"


# -- wrong types and malformed bodies --------------------------------------------------

def wrong_types(world: World) -> list[tuple[str, str, bytes]]:
    lb, amp = world.victim.lb_id, world.agent.amphora_id
    backend = f"{world.victim.pool_id}:{world.victim.listener_id}"
    member = f"/1.0/ext/loadbalancer/{lb}/backends/{backend}/servers/attacker"
    config = world.agent.config_file.read_text()
    return [
        ("PUT", "/1.0/config", b"\xff\xfe not utf-8"),
        ("PUT", "/1.0/config", b'{"base_path": "/"}'),
        ("PUT", "/1.0/config",
         config.replace("heartbeat_interval = 10",
                        "heartbeat_interval = 10\nheartbeat_key = a\x1bb").encode()),
        ("PUT", "/1.0/config", config.replace(str(world.agent.base_path),
                                              str(world.sentinel)).encode()),
        ("PUT", "/1.0/config", config.replace(world.agent.amphora_id,
                                              str(uuid.uuid4())).encode()),
        ("PUT", "/1.0/certificate", b'{"pem": 1}'),
        ("PUT", "/1.0/certificate", PEM),
        ("PUT", f"/1.0/loadbalancer/{lb}/certificates/x.pem", b"\x00\x01\x02"),
        ("PUT", f"/1.0/loadbalancer/{lb}/certificates/x.pem", "é".encode()),
        ("PUT", f"/1.0/loadbalancer/{amp}/{lb}/haproxy", b"global\n    bogus-keyword\n"),
        ("POST", "/1.0/plug/vip/192.0.2.10", b"[]"),
        ("POST", "/1.0/plug/vip/192.0.2.10",
         b'{"subnet_cidr": "192.0.2.0/24", "gateway": "192.0.2.1", '
         b'"mac_address": "fa:16:3e:00:00:01", "mtu": "1500"}'),
        ("POST", "/1.0/plug/vip/192.0.2.10",
         b'{"subnet_cidr": "192.0.2.0/24", "gateway": "192.0.2.1", '
         b'"mac_address": "fa:16:3e:00:00:01\\n"}'),
        ("POST", "/1.0/plug/network", b'{"mac_address": ["fa:16:3e:00:00:01"]}'),
        ("POST", "/1.0/plug/network", b'{"mac_address": "fa:16:3e:00:00:02", '
                                      b'"fixed_ips": {"ip_address": "192.0.2.3"}}'),
        ("POST", "/1.0/plug/network", b"not json"),
        ("PUT", "/1.0/interface/192.0.2.10/rules", b'{"protocol": "TCP"}'),
        ("PUT", "/1.0/interface/192.0.2.10/rules", b'[{"protocol": "TCP", "port": "80"}]'),
        ("PUT", member, b'{"weight": "heavy"}'),
        ("PUT", member, b'{"address": "192.0.2.50\\nserver x", "port": 80}'),
        ("PUT", member, b'{"address": "192.0.2.50", "port": 70000}'),
        ("PUT", member, b"[1, 2]"),
    ]


@pytest.mark.parametrize("index", range(22))
def test_wrong_types_and_malformed_bodies_are_refused(world: World, untouched: None,
                                                      index: int) -> None:
    cases = wrong_types(world)
    assert len(cases) == 22
    method, path, body = cases[index]
    assert_refused(send(world, method, path, body))


# -- concurrent conflicting requests -----------------------------------------------------

def test_concurrent_conflicting_uploads_and_deletes_end_consistent(world: World) -> None:
    """Threads upload two different configs to one new LB and delete it, at once.
    Whatever the order, each answer is a success or a 4xx, the LB ends either
    absent or with one of the two configs whole, nothing lands outside and
    the victim is untouched. (Serialisation itself is tested with the
    HAProxy manager.)"""
    sentinel, processes = snapshot(world.sentinel), haproxy_processes(world)
    lb_id = str(uuid.uuid4())
    amp = world.agent.amphora_id
    configs = [OctaviaStyleConfig(
        amphora_id=amp, lb_id=lb_id, listener_id=str(uuid.uuid4()), pool_id=str(uuid.uuid4()),
        base_path=str(world.agent.base_path), bind=f"127.0.0.1:{free_port()}",
        body=f"v{i}").render().encode() for i in range(2)]
    hostile = configs[0].replace(b"    maxconn 1000\n",
                                 f"    pidfile {world.sentinel}/race.pid\n".encode(), 1)
    requests = [("PUT", f"/1.0/loadbalancer/{amp}/{lb_id}/haproxy", configs[0]),
                ("PUT", f"/1.0/loadbalancer/{amp}/{lb_id}/haproxy", configs[1]),
                ("PUT", f"/1.0/loadbalancer/{amp}/{lb_id}/haproxy", hostile),
                ("DELETE", f"/1.0/listeners/{lb_id}", None),
                ("PUT", f"/1.0/loadbalancer/{lb_id}/certificates/race.pem", PEM),
                ("DELETE", f"/1.0/loadbalancer/{lb_id}/certificates/race.pem", None)] * 3
    replies: dict[int, Reply] = {}
    barrier = threading.Barrier(len(requests))

    def run(index: int, method: str, path: str, body: bytes | None) -> None:
        barrier.wait(timeout=30)
        replies[index] = send(world, method, path, body, chunked=body is not None)

    threads = [threading.Thread(target=run, args=(i, *r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(replies) == len(requests)
    for index, (_method, _path, body) in enumerate(requests):
        if body is hostile:  # never accepted, whatever ran beside it
            assert replies[index].status >= 400, replies[index]
    installed = world.agent.base_path / lb_id / "haproxy.cfg"
    assert not installed.exists() or installed.read_bytes() in configs
    cert = world.agent.cert_dir / lb_id / "race.pem"
    assert not cert.exists() or cert.read_bytes() == PEM
    assert snapshot(world.sentinel) == sentinel
    assert haproxy_processes(world) == processes
    assert send(world, "DELETE", f"/1.0/listeners/{lb_id}").status == 200
    assert not (world.agent.base_path / lb_id).exists()


def test_delete_removes_only_what_belongs_to_the_lb(world: World, untouched: None) -> None:
    """A config installed before the path rules (written here directly) that
    names the victim's socket and state file: deleting its LB must not remove
    them."""
    lb_id = str(uuid.uuid4())
    base = world.agent.base_path
    lb_dir = base / lb_id
    lb_dir.mkdir(mode=0o700)
    try:
        (lb_dir / "haproxy.cfg").write_text(
            "global\n"
            f"    stats socket {base}/{world.victim.lb_id}.sock mode 600 level admin\n"
            f"    server-state-file {world.sentinel}/sentinel.txt\n")
        assert send(world, "DELETE", f"/1.0/listeners/{lb_id}").status == 200
        assert not lb_dir.exists()
        assert (base / f"{world.victim.lb_id}.sock").exists()
    finally:
        shutil.rmtree(lb_dir, ignore_errors=True)


def test_crt_lists_name_only_the_lbs_certificates(world: World) -> None:
    """Octavia uploads a crt-list (paths, no PEM) per TLS listener through the
    certificate endpoint: accepted when it names the LB's certificates only."""
    sentinel, processes = snapshot(world.sentinel), haproxy_processes(world)
    lb = str(uuid.uuid4())
    certs = world.agent.cert_dir / lb
    server_pem = world.agent.settings.agent_server_cert
    path = f"/1.0/loadbalancer/{lb}/certificates/listener.pem"
    octavia_list = f"{certs}/cert-a.pem\n{certs}/cert-b.pem\n".encode()
    reply = send(world, "PUT", path, octavia_list)
    assert reply.status == 200, reply
    assert (certs / "listener.pem").read_bytes() == octavia_list
    hostile = [
        f"{server_pem}\n",
        f"# -----BEGIN CERTIFICATE-----\n# -----END CERTIFICATE-----\n{server_pem}\n",
        f"{certs}/../{world.victim.lb_id}/x.pem\n",
        f"{certs}/a.pem [ca-file {world.sentinel}/sentinel.txt verify required]\n",
        str(server_pem).lstrip("/") + "\n",
    ]
    for body in hostile:
        reply = send(world, "PUT", path, body.encode(), chunked=True)
        assert_refused(reply, 400)
        assert (certs / "listener.pem").read_bytes() == octavia_list
    assert send(world, "DELETE", f"/1.0/listeners/{lb}").status == 200
    assert not certs.exists()
    assert snapshot(world.sentinel) == sentinel
    assert haproxy_processes(world) == processes
