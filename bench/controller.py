"""Controller: time from ``create_load_balancer`` to the first request served.

For SINGLE and ACTIVE_STANDBY, with the state store on SQLite and on a
throwaway PostgreSQL cluster, the controller in-process on the local fabric
(amphorae are namespaces running the real agent). Also reported: time to
ACTIVE, and delete time. Baseline, measured in the same run: booting one
bare amphora on the fabric (namespace + agent until it answers), the floor
every create pays; ``ratio_to_boot`` is create-to-served / that floor.
Target: create to served under 3 s.

Healing (``BENCH_CONTROLLER_PARTS`` = ``create,failover,heartbeats``):
the master (or only) amphora SIGKILLed with its namespaces → replacement
serving, with the health manager's defaults (heartbeat every 2 s, stale
after 6 s), and the data-plane outage seen by a client polling the VIP
every 20 ms; target under 10 s. Heartbeats processed into the store per
second: a child process sends real signed version-4 datagrams for a fleet
of simulated amphorae (each with an LB, listener, pool and two members in
the store), one per amphora per second; baseline: verifying alone. The
first fleet is also measured with both statistics drivers (``state_store,
prometheus``): the exporter's running totals cost the writer next to nothing.

REST API (part ``api``): requests per second of ``GET /v2/lbaas/loadbalancers``
listing 100 load balancers (baseline: the same list through the Python
``Controller``), member batch updates (``PUT …/members``, 10 members) per
second (baseline: ``Controller.batch_update_members``), both over a store
without workers; and the time from ``POST …/members`` to the first request
that member answers through the VIP (baseline: ``Controller.create_member``).
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amphora_contract import heartbeat as hb
from amphora_contract.heartbeat import derive_amphora_key
from bench.common import emit, log, summary_ms
from controller_stub.compute import nsutil
from controller_stub.compute.local import LocalFabric
from controller_stub.controller import config as config_mod
from controller_stub.controller import db, models
from controller_stub.controller import statistics as stats_drivers
from controller_stub.controller.daemon import Service
from controller_stub.controller.health import HealthManager, HealthSettings
from controller_stub.controller.pgcluster import ThrowawayPostgres

RUNS = int(os.environ.get("BENCH_CONTROLLER_RUNS", "3"))
STORES = os.environ.get("BENCH_CONTROLLER_STORES", "sqlite,postgresql").split(",")
TOPOLOGIES = os.environ.get("BENCH_CONTROLLER_TOPOLOGIES", "SINGLE,ACTIVE_STANDBY").split(",")
TARGET_S = 3.0
PARTS = os.environ.get("BENCH_CONTROLLER_PARTS", "create,failover,heartbeats,api").split(",")
FLEETS = [int(n) for n in os.environ.get("BENCH_CONTROLLER_FLEETS", "2000,4000").split(",")]
FAILOVER_TARGET_S = 10.0
HB_KEY = "bench-master-key-0123456789"


def _served(namespace: str, address: str, member: str | None = None) -> bool:
    """One request through ``address`` is answered (by ``member``, if named)."""
    def get() -> bool:
        conn = http.client.HTTPConnection(address, 80, timeout=0.5)
        try:
            conn.request("GET", "/")
            name = json.loads(conn.getresponse().read()).get("member")
            return name is not None and member in (None, name)
        finally:
            conn.close()
    try:
        return nsutil.run_in(namespace, get)
    except (OSError, ValueError):
        return False


def _service(workdir: Path, url: str, name: str, health: bool = False) -> Service:
    path = workdir / f"{name}.conf"
    text = (f"[controller]\nid = bench-{name}\nworkers = 2\npoll_seconds = 0.02\n"
            f"[database]\nurl = {url}\n[compute]\ndriver = local\nworkdir = {workdir}\n"
            "[api]\nbind_port = 0\n")
    if health:  # defaults otherwise: heartbeat every 2 s, stale after 6 s
        text += f"[health_manager]\nenabled = true\nbind_port = 0\nheartbeat_key = {HB_KEY}\n"
    path.write_text(text, encoding="utf-8")
    return Service(config_mod.load(path))


def _measure_failover(service: Service, member: str, client: str,
                      topology: str) -> tuple[list[float], list[float], list[float]]:
    """(kill → replacement serving, kill → failover detected, longest outage) per run."""
    api = service.api
    profile = api.create_flavor_profile(f"bench-fo-{topology}-{time.monotonic_ns()}",
                                        {"loadbalancer_topology": topology})
    flavor = api.create_flavor(profile["name"], profile["id"])
    healed, detected, outages = [], [], []
    for _ in range(RUNS):
        lb = api.create_load_balancer(flavor_id=flavor["id"], listeners=[{
            "protocol": "HTTP", "protocol_port": 80,
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": member, "protocol_port": 80}]}}])
        lb = api.wait(lb["id"], timeout=60)
        vip = lb["vip_address"]
        deadline = time.monotonic() + 30
        while not _served(client, vip) and time.monotonic() < deadline:
            time.sleep(0.02)
        amphorae = api.amphorae(lb["id"])
        ids = {a["id"] for a in amphorae}
        deadline = time.monotonic() + 30  # every amphora monitored (one heartbeat stored)
        while time.monotonic() < deadline:
            with service.sessions() as session:
                seen = set(session.scalars(select(models.AmphoraHealth.amphora_id).where(
                    models.AmphoraHealth.amphora_id.in_(ids))))
            if seen == ids:
                break
            time.sleep(0.1)
        victim = next(a for a in amphorae if a["role"] in ("MASTER", "STANDALONE"))
        start = time.monotonic()
        nsutil.crash(victim["compute_data"]["haproxy_namespace"],
                     victim["compute_data"]["namespace"])
        down_since, longest, detected_at = None, 0.0, None
        while True:
            now = time.monotonic()
            ok = _served(client, vip)
            if not ok and down_since is None:
                down_since = now
            if ok and down_since is not None:
                longest, down_since = max(longest, now - down_since), None
            current = api.get_load_balancer(lb["id"])
            if detected_at is None and current["provisioning_status"] == "PENDING_UPDATE":
                detected_at = now - start
            if current["provisioning_status"] == "ERROR":
                raise RuntimeError(current.get("status_reason"))
            if (ok and current["provisioning_status"] == "ACTIVE"
                    and victim["id"] not in {a["id"] for a in api.amphorae(lb["id"])}):
                healed.append(time.monotonic() - start)
                break
            if now - start > 90:
                raise RuntimeError("no replacement serving after 90 s")
            time.sleep(0.02)
        detected.append(detected_at or 0.0)
        outages.append(longest)
        api.delete_load_balancer(lb["id"], cascade=True)
        api.wait_deleted(lb["id"])
    return healed, detected, outages


def _fleet(sessions: Any, count: int) -> list[tuple[str, str, str, list[str]]]:
    """``count`` amphorae, each with an ACTIVE LB, listener, pool and two members."""
    fleet = []
    with sessions.begin() as session:
        for _ in range(count):
            lb = models.LoadBalancer(topology="SINGLE", provisioning_status="ACTIVE",
                                     operating_status="ONLINE")
            pool = models.Pool(load_balancer=lb, protocol="HTTP", lb_algorithm="ROUND_ROBIN",
                               provisioning_status="ACTIVE", operating_status="ONLINE")
            members = [models.Member(pool=pool, address=f"198.51.100.{i}", protocol_port=80,
                                     provisioning_status="ACTIVE",
                                     operating_status="NO_MONITOR") for i in (1, 2)]
            listener = models.Listener(load_balancer=lb, protocol="HTTP", protocol_port=80,
                                       provisioning_status="ACTIVE", operating_status="ONLINE")
            amphora = models.Amphora(load_balancer=lb, status="ALLOCATED", role="STANDALONE")
            session.add_all([lb, pool, listener, amphora, *members])
            session.flush()
            fleet.append((amphora.id, listener.id, pool.id, [m.id for m in members]))
    return fleet


def _send_fleet(fleet: list[tuple[str, str, str, list[str]]], address: tuple[str, int],
                seconds: int, ready: Any) -> None:
    """Child process: each amphora one signed datagram per second, spread evenly."""
    keys = {amp: derive_amphora_key(HB_KEY, amp) for amp, *_ in fleet}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ready.set()
    start = time.monotonic()
    for second in range(seconds):
        for i, (amp, listener, pool, members) in enumerate(fleet):
            at = start + second + i / len(fleet)
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = hb.message(amp, second + 1, {listener: {
                "status": "OPEN", "stats": {"tx": 100, "rx": 50, "conns": 1, "totconns": 2,
                                            "ereq": 0}}},
                {f"{pool}:{listener}": {"status": "UP",
                                        "members": {members[0]: "UP", members[1]: "DOWN"}}})
            sock.sendto(hb.wrap_v4(body, keys[amp]), address)


def _measure_heartbeats(url: str, count: int, seconds: int = 5,
                        drivers: str = "state_store") -> dict[str, Any]:
    sessions = db.open_store(url)
    fleet = _fleet(sessions, count)
    settings = HealthSettings(enabled=True, master_key=HB_KEY, bind_port=0, failover=False,
                              check_interval=3600)
    publisher = stats_drivers.from_options({"drivers": drivers, "prometheus_port": "0"})
    manager = HealthManager(sessions, settings, namespace=None, bind_ip="127.0.0.1",
                            start_failover=lambda *_: False, statistics=publisher).start()
    try:
        ctx = multiprocessing.get_context("fork")
        ready = ctx.Event()
        child = ctx.Process(target=_send_fleet, args=(fleet, manager.address, seconds, ready))
        child.start()
        ready.wait(30)
        start = time.monotonic()
        child.join()
        sent_for = time.monotonic() - start
        deadline = time.monotonic() + 30
        expected = count * seconds
        while time.monotonic() < deadline:  # until everything that arrived is written
            counters = manager.listener.counters()
            # flush() waits for a batch the writer is storing: nothing is in flight after
            if manager.received >= counters["accepted"] and manager.flush() == 0:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        drain = elapsed - sent_for
        counters = manager.listener.counters()
        return {"fleet": count, "statistics": drivers, "sent": expected,
                "seconds": round(elapsed, 2),
                "accepted": counters["accepted"], "dropped_queue_full": counters["queue_full"],
                "lost_in_kernel": expected - counters["received"],
                "receive_buffer_drops": manager.listener.kernel_drops(),
                "rows_stored": manager.stored, "batches": manager.batches,
                "superseded": manager.superseded, "backlog_peak": manager.backlog_peak,
                "failed_batches": manager.failed_batches,
                "drain_after_last_send_s": round(drain, 2),
                # every accepted message reached the store (the newest per amphora
                # within a batch is the one written): messages per second end to end
                "processed_per_s": round(counters["accepted"] / elapsed),
                "rows_per_s": round(manager.stored / elapsed),
                "offered_per_s": round(expected / sent_for)}
    finally:
        manager.stop()
        publisher.close()
        sessions.kw["bind"].dispose()


def _verify_baseline(count: int = 3000) -> float:
    """Datagrams verified per second by one HeartbeatVerifier, no store."""
    verifier = hb.HeartbeatVerifier(master_key=HB_KEY)
    grams = []
    for i in range(count):
        amp = f"amp-{i}"
        grams.append(hb.wrap_v4(hb.message(amp, 1, {"l": {"status": "OPEN", "stats": {
            "tx": 1, "rx": 1, "conns": 1, "totconns": 1, "ereq": 0}}},
            {"p:l": {"status": "UP", "members": {"m1": "UP", "m2": "DOWN"}}}),
            derive_amphora_key(HB_KEY, amp)))
    start = time.monotonic()
    for gram in grams:
        verifier.verify(gram)
    return count / (time.monotonic() - start)


def _step_times(service: Service, lb_id: str) -> dict[str, float]:
    """Seconds each step of the LB's create flow took (flow_step rows)."""
    with service.sessions() as session:
        rows = session.scalars(select(models.FlowStep).join(
            models.Flow, models.Flow.id == models.FlowStep.flow_id).where(
            models.Flow.load_balancer_id == lb_id, models.Flow.kind == "lb_create"))
        return {step.name: (step.finished_at - step.started_at).total_seconds()
                for step in rows if step.finished_at and step.started_at}


def _measure(service: Service, fabric: LocalFabric, member: str, client: str,
             topology: str) -> tuple[list[float], list[float], list[float],
                                     dict[str, list[float]]]:
    api = service.api
    profile = api.create_flavor_profile(f"bench-{topology}-{time.monotonic_ns()}",
                                        {"loadbalancer_topology": topology})
    flavor = api.create_flavor(profile["name"], profile["id"])
    served, active, deleted = [], [], []
    steps: dict[str, list[float]] = {}
    for _ in range(RUNS):
        start = time.monotonic()
        lb = api.create_load_balancer(flavor_id=flavor["id"], listeners=[{
            "protocol": "HTTP", "protocol_port": 80,
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                             "members": [{"address": member, "protocol_port": 80}]}}])
        active_at = None
        while True:
            current = api.get_load_balancer(lb["id"])
            if current["provisioning_status"] == "ERROR":
                raise RuntimeError(current.get("status_reason"))
            if current["provisioning_status"] == "ACTIVE" and active_at is None:
                active_at = time.monotonic() - start
            vip = current["vip_address"]
            if vip and _served(client, vip):
                served.append(time.monotonic() - start)
                break
            if time.monotonic() - start > 60:
                raise RuntimeError("no request served after 60 s")
            time.sleep(0.01)
        api.wait(lb["id"])
        active.append(active_at if active_at is not None else time.monotonic() - start)
        for name, seconds in _step_times(service, lb["id"]).items():
            steps.setdefault(name, []).append(seconds)
        start = time.monotonic()
        api.delete_load_balancer(lb["id"], cascade=True)
        api.wait_deleted(lb["id"])
        deleted.append(time.monotonic() - start)
    return served, active, deleted, steps


def _rate(call: Any, seconds: float = 2.0) -> float:
    """Calls per second of ``call`` over about ``seconds``."""
    count, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        call()
        count += 1
    return count / elapsed


def _http(port: int) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(method: str, path: str, body: Any = None) -> Any:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return json.loads(data) if data else None
    return call


def _measure_api_rates(workdir: Path) -> None:
    """List and batch rates over a store without workers (no data plane)."""
    from sqlalchemy import update

    from controller_stub.compute.local import DEFAULT_NETWORKS
    from controller_stub.controller.api import Controller
    from controller_stub.controller.imaging import StaticImage
    from controller_stub.controller.networks import NetworkRegistry
    from controller_stub.controller.rest import auth, create_app
    from controller_stub.controller.rest.server import ApiServer

    sessions = db.open_store(f"sqlite:///{workdir}/api-bench.db")
    controller = Controller(sessions, StaticImage("img", {"haproxy_version": "2.6.12",
                                                          "openssl_version": "3.0.11"}))
    for n in range(100):
        controller.create_load_balancer(name=f"lb{n}", project_id="bench")
    app = create_app(controller, NetworkRegistry(DEFAULT_NETWORKS))
    app.wsgi_app = auth.noauth(app.wsgi_app, "bench")  # type: ignore[method-assign]
    server = ApiServer(app, "127.0.0.1", 0).start()
    try:
        call = _http(server.address[1])
        assert len(call("GET", "/v2/lbaas/loadbalancers")["loadbalancers"]) == 100
        api_rate = _rate(lambda: call("GET", "/v2/lbaas/loadbalancers"))
        base_rate = _rate(lambda: controller.list_objects("loadbalancer"))
        emit("controller_api_list_100_lbs", requests_per_s=round(api_rate, 1),
             baseline_python_per_s=round(base_rate, 1),
             ratio_to_baseline=round(api_rate / base_rate, 3))
        lb = controller.list_objects("loadbalancer")[0]

        def settle() -> None:
            with sessions.begin() as session:
                for model in (models.LoadBalancer, models.Pool, models.Member):
                    session.execute(update(model).values(provisioning_status="ACTIVE"))
                    session.execute(update(models.Flow).values(state="DONE"))
        settle()
        pool = controller.create_pool(lb["id"], protocol="HTTP", lb_algorithm="ROUND_ROBIN")
        settle()
        weights = iter(range(1, 1_000_000))

        def members() -> list[dict[str, Any]]:
            weight = next(weights) % 200 + 1
            return [{"address": f"198.51.100.{10 + n}", "protocol_port": 80,
                     "weight": weight} for n in range(10)]

        def via_api() -> None:
            call("PUT", f"/v2/lbaas/pools/{pool['id']}/members", {"members": members()})
            settle()

        def via_python() -> None:
            controller.batch_update_members(pool["id"], members())
            settle()
        api_rate = _rate(via_api)
        base_rate = _rate(via_python)
        emit("controller_api_member_batch_update", members=10,
             updates_per_s=round(api_rate, 1), baseline_python_per_s=round(base_rate, 1),
             ratio_to_baseline=round(api_rate / base_rate, 3))
    finally:
        server.stop()
        sessions.kw["bind"].dispose()


def _measure_member_to_traffic(workdir: Path, first: str, second: str, client: str) -> None:
    """POST a member → the first request it answers through the VIP."""
    service = _service(workdir, f"sqlite:///{workdir}/api-traffic.db", "api").start()
    try:
        call = _http(service.api_address[1])
        subnet = next(s.id for s in service.networks.subnets.values()
                      if s.network_name == "vip" and s.ip_version == 4)
        lb = call("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {
            "vip_subnet_id": subnet, "listeners": [{
                "protocol": "HTTP", "protocol_port": 80, "default_pool": {
                    "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                    "members": [{"address": first, "protocol_port": 80}]}}]}})["loadbalancer"]
        vip = service.api.wait(lb["id"], timeout=120)["vip_address"]
        pool_id = lb["pools"][0]["id"]

        def first_answer(start: float) -> float:
            while not _served(client, vip, "m2"):
                if time.monotonic() - start > 60:
                    raise TimeoutError("the new member never answered")
            return time.monotonic() - start

        api_s, base_s = [], []
        for _ in range(RUNS):
            start = time.monotonic()
            member = call("POST", f"/v2/lbaas/pools/{pool_id}/members", {"member": {
                "address": second, "protocol_port": 80}})["member"]
            api_s.append(first_answer(start))
            service.api.wait(lb["id"])
            call("DELETE", f"/v2/lbaas/pools/{pool_id}/members/{member['id']}")
            service.api.wait(lb["id"])
            start = time.monotonic()
            member = service.api.create_member(pool_id, address=second, protocol_port=80)
            base_s.append(first_answer(start))
            service.api.wait(lb["id"])
            service.api.delete_member(member["id"])
            service.api.wait(lb["id"])
        emit("controller_api_member_add_to_traffic", runs=RUNS, **summary_ms(api_s),
             baseline_python_median_ms=summary_ms(base_s)["median_ms"],
             ratio_to_baseline=round(statistics.median(api_s) / statistics.median(base_s), 2))
        service.api.delete_load_balancer(lb["id"], cascade=True)
        service.api.wait_deleted(lb["id"])
    finally:
        service.stop()


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bc-", dir="/tmp"))
    fabric = LocalFabric(workdir)
    pg = None
    try:
        fabric.save()
        member = fabric.create_member("member", name="m1")
        client = fabric.create_client("client")
        boots = []
        for _ in range(RUNS):
            start = time.monotonic()
            amphora = fabric.create_amphora()
            boots.append(time.monotonic() - start)
            fabric.delete_amphora(amphora)
        emit("controller_baseline_amphora_boot", runs=RUNS, **summary_ms(boots))
        floor = statistics.median(boots)
        pg = ThrowawayPostgres().start() if "postgresql" in STORES else None
        stores = {"sqlite": f"sqlite:///{workdir}/bench.db"}
        if "postgresql" in STORES:
            stores["postgresql"] = pg.create_database("bench")
        stores = {k: v for k, v in stores.items() if k in STORES}
        for store, url in stores.items():
            if "create" not in PARTS:
                break
            service = _service(workdir, url, store).start()
            try:
                for topology in TOPOLOGIES:
                    log(f"controller: {store} {topology}")
                    served, active, deleted, steps = _measure(
                        service, fabric, str(member.ipv4), client.namespace, topology)
                    median = statistics.median(served)
                    emit("controller_create_to_first_request", store=store, topology=topology,
                         runs=RUNS, target_ms=TARGET_S * 1000, meets_target=median < TARGET_S,
                         ratio_to_boot=round(median / floor, 2), **summary_ms(served))
                    emit("controller_create_to_active", store=store, topology=topology,
                         runs=RUNS, **summary_ms(active))
                    emit("controller_delete", store=store, topology=topology, runs=RUNS,
                         **summary_ms(deleted))
                    for name, seconds in steps.items():
                        emit("controller_create_step", store=store, topology=topology,
                             step=name, runs=RUNS, **summary_ms(seconds))
            finally:
                service.stop()
        if "failover" in PARTS:
            url = stores.get("sqlite") or next(iter(stores.values()))
            service = _service(workdir, url, "failover", health=True).start()
            try:
                for topology in TOPOLOGIES:
                    log(f"controller: failover {topology}")
                    assert service.health is not None
                    trips = service.health.breaker_trips
                    healed, detected, outages = _measure_failover(
                        service, str(member.ipv4), client.namespace, topology)
                    median = statistics.median(healed)
                    emit("controller_failover_to_serving", topology=topology, runs=RUNS,
                         stale_after_s=service.cfg.health.stale_after,
                         target_ms=FAILOVER_TARGET_S * 1000,
                         meets_target=median < FAILOVER_TARGET_S, **summary_ms(healed))
                    emit("controller_failover_detected", topology=topology, runs=RUNS,
                         breaker_trips=service.health.breaker_trips - trips,
                         **summary_ms(detected))
                    emit("controller_failover_dataplane_outage", topology=topology,
                         runs=RUNS, **summary_ms(outages))
            finally:
                service.stop()
        if "api" in PARTS:
            log("controller: REST API")
            _measure_api_rates(workdir)
            second = fabric.create_member("member", name="m2")
            _measure_member_to_traffic(workdir, str(member.ipv4), str(second.ipv4),
                                       client.namespace)
        if "heartbeats" in PARTS:
            emit("controller_heartbeat_verify_baseline",
                 per_s=round(_verify_baseline()))
            for store in stores:
                runs = [(count, "state_store") for count in FLEETS]
                runs.append((FLEETS[0], "state_store,prometheus"))
                for count, drivers in runs:
                    log(f"controller: heartbeats {store} fleet {count} ({drivers})")
                    name = f"hb{count}{'p' if 'prometheus' in drivers else ''}"
                    fresh = (pg.create_database(name) if store == "postgresql"
                             and pg is not None else f"sqlite:///{workdir}/{name}.db")
                    emit("controller_heartbeats_stored", store=store, target_per_s=2000,
                         **_measure_heartbeats(fresh, count, drivers=drivers))
        return 0
    finally:
        if pg is not None:
            pg.stop()
        fabric.teardown()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
