"""Controller: time from ``create_load_balancer`` to the first request served.

For SINGLE and ACTIVE_STANDBY, with the state store on SQLite and on a
throwaway PostgreSQL cluster, the controller in-process on the local fabric
(amphorae are namespaces running the real agent). Also reported: time to
ACTIVE, and delete time. Baseline, measured in the same run: booting one
bare amphora on the fabric (namespace + agent until it answers), the floor
every create pays; ``ratio_to_boot`` is create-to-served / that floor.
Target: create to served under 3 s.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, log, summary_ms
from controller_stub.compute import nsutil
from controller_stub.compute.local import LocalFabric
from controller_stub.controller import config as config_mod
from controller_stub.controller.daemon import Service
from controller_stub.controller.pgcluster import ThrowawayPostgres

RUNS = int(os.environ.get("BENCH_CONTROLLER_RUNS", "3"))
TARGET_S = 3.0


def _served(namespace: str, address: str) -> bool:
    def get() -> bool:
        conn = http.client.HTTPConnection(address, 80, timeout=0.5)
        try:
            conn.request("GET", "/")
            return "member" in json.loads(conn.getresponse().read())
        finally:
            conn.close()
    try:
        return nsutil.run_in(namespace, get)
    except (OSError, ValueError):
        return False


def _service(workdir: Path, url: str, name: str) -> Service:
    path = workdir / f"{name}.conf"
    path.write_text(f"[controller]\nid = bench-{name}\nworkers = 2\npoll_seconds = 0.02\n"
                    f"[database]\nurl = {url}\n[compute]\ndriver = local\nworkdir = {workdir}\n",
                    encoding="utf-8")
    return Service(config_mod.load(path))


def _measure(service: Service, fabric: LocalFabric, member: str, client: str,
             topology: str) -> tuple[list[float], list[float], list[float]]:
    api = service.api
    profile = api.create_flavor_profile(f"bench-{topology}-{time.monotonic_ns()}",
                                        {"loadbalancer_topology": topology})
    flavor = api.create_flavor(profile["name"], profile["id"])
    served, active, deleted = [], [], []
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
        start = time.monotonic()
        api.delete_load_balancer(lb["id"], cascade=True)
        api.wait_deleted(lb["id"])
        deleted.append(time.monotonic() - start)
    return served, active, deleted


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
        pg = ThrowawayPostgres().start()
        stores = {"sqlite": f"sqlite:///{workdir}/bench.db",
                  "postgresql": pg.create_database("bench")}
        for store, url in stores.items():
            service = _service(workdir, url, store).start()
            try:
                for topology in ("SINGLE", "ACTIVE_STANDBY"):
                    log(f"controller: {store} {topology}")
                    served, active, deleted = _measure(service, fabric, str(member.ipv4),
                                                       client.namespace, topology)
                    median = statistics.median(served)
                    emit("controller_create_to_first_request", store=store, topology=topology,
                         runs=RUNS, target_ms=TARGET_S * 1000, meets_target=median < TARGET_S,
                         ratio_to_boot=round(median / floor, 2), **summary_ms(served))
                    emit("controller_create_to_active", store=store, topology=topology,
                         runs=RUNS, **summary_ms(active))
                    emit("controller_delete", store=store, topology=topology, runs=RUNS,
                         **summary_ms(deleted))
            finally:
                service.stop()
        return 0
    finally:
        if pg is not None:
            pg.stop()
        fabric.teardown()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
