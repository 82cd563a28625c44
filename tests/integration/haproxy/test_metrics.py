"""The agent's Prometheus endpoint over mTLS: its output parses with
prometheus_client's parser, HAProxy's exporter output is there per LB (a
unix-socket exporter bind in the LB's directory, and an Octavia-style TCP one
inside the namespace), and the counters move with traffic, reloads, runtime
changes and refused configs; amphora-ctl prints an LB's stats from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller_stub.client import BadRequest
from controller_stub.local_agent import Pki, RunningAgent, free_port, short_tmpdir, start_agent
from controller_stub.octavia_style import OctaviaStyleConfig
from tests.integration.haproxy.test_heartbeat_exact import Receiver, _wait_for
from tests.support import namespaces

KEY = "exact-counters-key"


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def agent(pki: Pki, lb_namespace: str) -> Iterator[RunningAgent]:
    receiver = Receiver()
    root = short_tmpdir()
    running = start_agent(root, pki, amphora={"namespace": lb_namespace},
                          controllers=[receiver.address], heartbeat_interval=1,
                          heartbeat_key=KEY)
    yield running
    running.process.stop()
    receiver.close()
    shutil.rmtree(root, ignore_errors=True)


def _get(ns: str, port: int) -> None:
    status, _ = namespaces.http_get(ns, "127.0.0.1", port)
    assert status == 200


def test_metrics_parse_and_move(agent: RunningAgent, lb_namespace: str) -> None:
    member_port = free_port()
    member = namespaces.Member(lb_namespace, "127.0.0.11", member_port, "member-127.0.0.11")
    member_id = str(uuid.uuid4())
    ours = OctaviaStyleConfig(
        amphora_id=agent.amphora_id, lb_id=str(uuid.uuid4()), listener_id=str(uuid.uuid4()),
        pool_id=str(uuid.uuid4()), base_path=str(agent.base_path),
        bind=f"127.0.0.1:{free_port()}", members=[(member_id, f"127.0.0.11:{member_port}")])
    ours.prometheus_bind = f"unix@{agent.base_path}/{ours.lb_id}/prometheus.sock mode 600"
    octavia = OctaviaStyleConfig(
        amphora_id=agent.amphora_id, lb_id=str(uuid.uuid4()), listener_id=str(uuid.uuid4()),
        pool_id=str(uuid.uuid4()), base_path=str(agent.base_path),
        bind=f"127.0.0.1:{free_port()}", members=[(str(uuid.uuid4()),
                                                   f"127.0.0.11:{member_port}")],
        prometheus_bind=f"127.0.0.1:{free_port()}")
    backend = f"{ours.pool_id}:{ours.listener_id}"
    port = int(ours.bind.rpartition(":")[2])
    try:
        with agent.client() as client:
            assert "metrics" in client.root()["extensions"]
            for cfg in (ours, octavia):
                client.upload_haproxy(agent.amphora_id, cfg.lb_id, cfg.render())
                client.lb_action(cfg.lb_id, "start")
            before = _samples(client.metrics())
            assert _value(before, "amphora_agent_haproxy_exporter_up", lb_id=ours.lb_id) == 1
            assert _value(before, "amphora_agent_haproxy_exporter_up", lb_id=octavia.lb_id) == 1
            assert _value(before, "amphora_agent_certificate_expiry_seconds",
                          certificate="server") > 86400
            assert _value(before, "haproxy_frontend_sessions_total", lb_id=octavia.lb_id,
                          proxy=octavia.listener_id) == 0

            for _ in range(3):
                _get(lb_namespace, port)
            client.lb_action(ours.lb_id, "reload")
            # the reload started a new worker: its exporter counts from there
            for _ in range(2):
                _get(lb_namespace, port)
            assert client.set_server(ours.lb_id, backend, member_id, state="drain") == "runtime"
            with pytest.raises(BadRequest):
                client.upload_haproxy(agent.amphora_id, ours.lb_id,
                                      ours.render() + "\nbackend broken\n    bogus-keyword on\n")
            _wait_for(lambda: _value(_samples(client.metrics()),
                                     "amphora_agent_heartbeats_sent_total")
                      > _value(before, "amphora_agent_heartbeats_sent_total"),
                      "a heartbeat counted")
            text = client.metrics()
            after = _samples(text)

            def moved(name: str, **labels: str) -> float:
                return _value(after, name, **labels) - _value(before, name, **labels)

            assert moved("amphora_agent_haproxy_reloads_total") == 1
            assert moved("amphora_agent_runtime_changes_total") == 1
            assert moved("amphora_agent_config_validation_failures_total") == 1
            assert moved("amphora_agent_haproxy_reload_failures_total") == 0
            now = after
            assert _value(now, "haproxy_frontend_sessions_total", lb_id=ours.lb_id,
                          proxy=ours.listener_id) == 2
            assert _value(now, "haproxy_server_status", lb_id=ours.lb_id, proxy=backend,
                          server=member_id, state="DRAIN") == 1

            # amphora-ctl stats, from the same endpoint
            args = ["stats", ours.lb_id, "--address", agent.host, "--port", str(agent.port),
                    "--amphora-id", agent.amphora_id, "--ca-file", str(agent.pki.ca_file),
                    "--client-cert", str(agent.pki.client_file)]
            run = [sys.executable, "-m", "controller_stub.cli", *args]
            rows = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True,
                                             check=True, timeout=60).stdout)
            front = next(r for r in rows if r["kind"] == "frontend"
                         and r["proxy"] == ours.listener_id)
            assert front["total_sessions"] == 2 and front["bytes_out"] > 0
            server = next(r for r in rows if r["kind"] == "server")
            assert server["server"] == member_id and server["status"] == "DRAIN"
            wide = {**os.environ, "COLUMNS": "300"}  # rich wraps to the terminal's width
            table = subprocess.run(run, capture_output=True, text=True, check=True,
                                   timeout=60, env=wide).stdout
            assert ours.listener_id in table and member_id in table and "DRAIN" in table
            for cfg in (ours, octavia):
                client.delete_listener(cfg.lb_id)
    finally:
        member.close()

