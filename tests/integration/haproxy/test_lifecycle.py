"""HAProxy lifecycle through the real agent: upload, run, reload, delete."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from controller_stub import haproxy_cli
from controller_stub.client import BadRequest, InternalServerError, NotFound
from controller_stub.local_agent import RunningAgent, free_port
from controller_stub.octavia_style import OctaviaStyleConfig
from haproxy_templates import peer_name
from tests.support import namespaces


def _config(agent: RunningAgent, port: int, **kwargs: object) -> OctaviaStyleConfig:
    lb_id = str(kwargs.pop("lb_id", uuid.uuid4()))
    return OctaviaStyleConfig(
        amphora_id=agent.amphora_id, lb_id=lb_id, listener_id=str(uuid.uuid4()),
        pool_id=str(uuid.uuid4()), base_path=str(agent.base_path), bind=f"127.0.0.1:{port}",
        **kwargs)  # type: ignore[arg-type]


def _get(ns: str, port: int) -> bytes:
    status, body = namespaces.http_get(ns, "127.0.0.1", port)
    assert status == 200
    return body


def test_upload_start_serve_reload_stop_delete(agent: RunningAgent, lb_namespace: str) -> None:
    port = free_port()
    cfg = _config(agent, port, body="one")
    with agent.client() as client:
        etag = client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
        assert client.get_haproxy(cfg.lb_id) == cfg.render()
        import hashlib

        assert etag == hashlib.md5(cfg.render().encode()).hexdigest()
        listed = client.listeners()
        assert listed == [{"status": "OFFLINE", "uuid": cfg.listener_id, "type": "HTTP"}]

        reply = client.lb_action(cfg.lb_id, "reload")  # reload of a stopped LB starts it
        assert "started" in reply["details"]
        assert _get(lb_namespace, port) == b"one"
        assert client.listeners()[0]["status"] == "ACTIVE"
        details = client.details()
        assert details["haproxy_count"] == 1 and details["listeners"] == [cfg.listener_id]

        cfg.body = "two"
        client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
        assert _get(lb_namespace, port) == b"one"  # uploaded, not yet applied
        assert "reloaded" in client.lb_action(cfg.lb_id, "RELOAD")["details"]
        assert _get(lb_namespace, port) == b"two"
        layout_dir = agent.base_path / cfg.lb_id
        assert (layout_dir / "haproxy.cfg.last-good").read_text() == cfg.render()

        client.lb_action(cfg.lb_id, "stop")
        client.lb_action(cfg.lb_id, "stop")  # idempotent
        assert client.details()["haproxy_count"] == 0
        with pytest.raises(ConnectionRefusedError):  # nothing listens (not a hang)
            namespaces.http_get(lb_namespace, "127.0.0.1", port, timeout=1)
        client.lb_action(cfg.lb_id, "start")
        client.lb_action(cfg.lb_id, "Start")  # idempotent, case-insensitive
        assert _get(lb_namespace, port) == b"two"

        client.upload_cert(cfg.lb_id, "tls.pem", b"-----BEGIN X-----\n-----END X-----\n")
        client.delete_listener(cfg.lb_id)
        client.delete_listener(cfg.lb_id)  # idempotent
        assert not layout_dir.exists()
        assert not (agent.cert_dir / cfg.lb_id).exists()
        assert not (agent.base_path / f"{cfg.lb_id}.sock").exists()
        assert client.listeners() == []
        with pytest.raises(NotFound) as err:
            client.get_haproxy(cfg.lb_id)
        assert err.value.body["message"] == "Loadbalancer Not Found"
        with pytest.raises(NotFound):
            client.lb_action(cfg.lb_id, "start")
        with pytest.raises(ConnectionRefusedError):
            namespaces.http_get(lb_namespace, "127.0.0.1", port, timeout=1)


def test_invalid_config_is_400_and_traffic_goes_on(agent: RunningAgent,
                                                   lb_namespace: str) -> None:
    port = free_port()
    cfg = _config(agent, port, body="steady")
    stop = threading.Event()
    failures: list[str] = []
    served = [0]

    def traffic() -> None:
        while not stop.is_set():
            try:
                if _get(lb_namespace, port) != b"steady":
                    failures.append("wrong body")
                served[0] += 1
            except Exception as exc:
                failures.append(repr(exc))

    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
        client.lb_action(cfg.lb_id, "start")
        pid_before = haproxy_cli.show_proc(str(agent.base_path / cfg.lb_id / "master.sock"))
        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            broken = cfg.render().replace("balance roundrobin", "balance sideways")
            with pytest.raises(BadRequest) as err:
                client.upload_haproxy(agent.amphora_id, cfg.lb_id, broken)
            assert err.value.body["message"] == "Invalid request"
            assert "balance only supports" in err.value.body["details"]
            injected = cfg.render() + "\nfrontend\n"
            with pytest.raises(BadRequest):
                client.upload_haproxy(agent.amphora_id, cfg.lb_id, injected)
            assert client.get_haproxy(cfg.lb_id) == cfg.render()
            client.lb_action(cfg.lb_id, "reload")
        finally:
            stop.set()
            worker.join()
        assert failures == [] and served[0] > 0
        after = haproxy_cli.show_proc(str(agent.base_path / cfg.lb_id / "master.sock"))
        assert after.master_pid == pid_before.master_pid
        leftovers = [p.name for p in (agent.base_path / cfg.lb_id).iterdir()
                     if p.name.endswith(".new")]
        assert leftovers == []
        client.delete_listener(cfg.lb_id)


def test_invalid_first_upload_leaves_nothing(agent: RunningAgent) -> None:
    cfg = _config(agent, free_port(), body="x")
    with agent.client() as client:
        with pytest.raises(BadRequest):
            client.upload_haproxy(agent.amphora_id, cfg.lb_id, "global\n  nonsense on\n")
        assert not (agent.base_path / cfg.lb_id).exists()
        assert client.listeners() == []
        with pytest.raises(BadRequest):
            client.request("PUT", f"/1.0/loadbalancer/not-a-uuid/{cfg.lb_id}/haproxy",
                           data=cfg.render().encode())
        with pytest.raises(BadRequest) as err:
            client.lb_action(cfg.lb_id, "explode")
        assert err.value.body["details"] == "Unknown action: explode"


def test_reload_failure_rolls_back_to_last_known_good(agent: RunningAgent,
                                                      lb_namespace: str) -> None:
    port = free_port()
    cfg = _config(agent, port, body="good")
    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
        client.lb_action(cfg.lb_id, "start")
        # valid for haproxy -c, but the address does not exist in the namespace
        cfg.bind = f"192.0.2.77:{port}"
        cfg.body = "bad"
        client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
        with pytest.raises(InternalServerError) as err:
            client.lb_action(cfg.lb_id, "reload")
        assert "rolled back" in err.value.body["details"]
        assert _get(lb_namespace, port) == b"good"
        assert "string good" in client.get_haproxy(cfg.lb_id)
        client.delete_listener(cfg.lb_id)


def test_concurrent_reloads_are_coalesced(agent: RunningAgent, lb_namespace: str) -> None:
    port = free_port()
    cfg = _config(agent, port, body="v1")
    master = str(agent.base_path / cfg.lb_id / "master.sock")
    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
        client.lb_action(cfg.lb_id, "start")
        before = haproxy_cli.show_proc(master).reloads
        results: list[str] = []

        def reload() -> None:
            with agent.client() as own:
                results.append(own.lb_action(cfg.lb_id, "reload")["details"])

        threads = [threading.Thread(target=reload) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 8 and all("reloaded" in r for r in results)
        reloads = haproxy_cli.show_proc(master).reloads - before
        assert 1 <= reloads < 8
        client.delete_listener(cfg.lb_id)


def test_lb_survives_agent_restart(agent: RunningAgent, lb_namespace: str) -> None:
    port = free_port()
    cfg = _config(agent, port, body="persistent")
    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
        client.lb_action(cfg.lb_id, "start")
    master_pid = haproxy_cli.show_proc(str(agent.base_path / cfg.lb_id / "master.sock")).master_pid
    agent.process.stop()
    assert _get(lb_namespace, port) == b"persistent"
    agent.process.start()
    with agent.client() as client:
        agent.process.wait_ready(client)
        assert client.listeners() == [{"status": "ACTIVE", "uuid": cfg.listener_id,
                                       "type": "HTTP"}]
        assert client.details()["haproxy_count"] == 1
        client.lb_action(cfg.lb_id, "reload")
        assert haproxy_cli.show_proc(
            str(agent.base_path / cfg.lb_id / "master.sock")).master_pid == master_pid
        client.delete_listener(cfg.lb_id)


def test_octavia_rendered_features_are_accepted(agent: RunningAgent, lb_namespace: str) -> None:
    port, peer_port, prom_port = free_port(), free_port(), free_port()
    cfg = _config(agent, port, body="octavia", peer_name=peer_name(agent.amphora_id),
                  peer_address=f"127.0.0.1:{peer_port}", prometheus_bind=f"127.0.0.1:{prom_port}",
                  extra_global=["external-check", "insecure-fork-wanted", "group nogroup"])
    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
        client.lb_action(cfg.lb_id, "start")
        assert _get(lb_namespace, port) == b"octavia"
        # the running master was given this amphora's peer name (the rule is pinned
        # to Octavia's known answers in tests/unit/haproxy_templates/test_hpt_render.py)
        master = haproxy_cli.show_proc(str(agent.base_path / cfg.lb_id / "master.sock")).master_pid
        argv = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"-L") + 1].decode() == peer_name(agent.amphora_id)
        status, metrics = namespaces.http_get(lb_namespace, "127.0.0.1", prom_port, "/metrics")
        assert status == 200 and b"haproxy_process_" in metrics
        # the internal exporter is not a listener
        assert [entry["uuid"] for entry in client.listeners()] == [cfg.listener_id]
        client.delete_listener(cfg.lb_id)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_paths_are_validated(agent: RunningAgent) -> None:
    before = _tree(agent.base_path.parent)
    assert before, "the agent's directories are empty: nothing to compare"
    with agent.client() as client:
        # the dot segment is resolved before routing: no such route, a JSON 404
        with pytest.raises(NotFound) as missing:
            client.request("GET", "/1.0/loadbalancer/../haproxy", retry_not_ready=False)
        assert missing.value.body["http_code"] == 404
        with pytest.raises(BadRequest) as bad:
            client.request("GET", "/1.0/loadbalancer/abc/haproxy", retry_not_ready=False)
        assert bad.value.body == {"message": "Invalid request",
                                  "details": "lb_id must be a UUID"}
        for bad in ("not-a-uuid", "%2E%2E", "{00000000-0000-0000-0000-000000000000}"):
            with pytest.raises(BadRequest) as err:
                client.request("DELETE", f"/1.0/listeners/{bad}")
            assert err.value.body["message"] == "Invalid request", bad
        with pytest.raises(NotFound) as missing:  # a slash never reaches a handler
            client.request("DELETE", "/1.0/listeners/..%2F..%2Fetc", retry_not_ready=False)
        assert missing.value.body["http_code"] == 404
    # nothing the agent owns, nor the directory above it, lost a file
    assert _tree(agent.base_path.parent) == before


def test_maxconn_is_made_to_fit_the_open_file_limit(agent: RunningAgent,
                                                    lb_namespace: str) -> None:
    import resource

    from amphora_agent.haproxy.process import maxconn_that_fits

    port = free_port()
    cfg = _config(agent, port, body="fits")
    text = cfg.render().replace("    maxconn 1000\n", "    maxconn 5000000\n", 1)
    with agent.client() as client:
        client.upload_haproxy(agent.amphora_id, cfg.lb_id, text)
        client.lb_action(cfg.lb_id, "start")
        assert _get(lb_namespace, port) == b"fits"
        info = haproxy_cli.command(str(agent.base_path / f"{cfg.lb_id}.sock"), "show info")
        maxconn = int(next(line.split(":")[1] for line in info.splitlines()
                           if line.startswith("Maxconn:")))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        assert maxconn == maxconn_that_fits(hard) < 5000000
        # server state is saved for the next generation at every reload
        client.lb_action(cfg.lb_id, "reload")
        state = (agent.base_path / cfg.lb_id / "servers.state").read_text()
        assert state.splitlines()[0].strip() == "1"  # show servers state format version
        client.delete_listener(cfg.lb_id)
