"""`make demo`: load balancers declared to the controller, built on this host.

The embedded default: amphorae are network namespaces on the local fabric
(the real agent under gunicorn with mutual TLS in each), state in SQLite,
the controller's workers in this process. The demo creates a SINGLE and an
ACTIVE_STANDBY load balancer, each with an HTTP listener and two members,
sends traffic through both VIPs from a client namespace, shows the status
trees, removes and re-adds a member (runtime API, no reload), changes a
listener (new config, reload), kills the MASTER amphora of the
ACTIVE_STANDBY load balancer (every process SIGKILLed, its namespaces
deleted) while a client polls the VIP every 20 ms: the standby keeps
serving, the health manager notices the silence and replaces the dead
amphora, which joins as BACKUP, and the LB is ONLINE again. Then it deletes
everything and shows an ACTIVE_STANDBY pair failing over with its measured
outage. Needs root.

Each step is one method of :class:`Demo`, run in order by :meth:`Demo.run`;
later segments slot in as further steps.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from controller_stub import haproxy_cli
from controller_stub.active_standby import Prober, build_pair, outage
from controller_stub.compute import nsutil
from controller_stub.compute.local import LocalFabric
from controller_stub.controller import config as config_mod
from controller_stub.controller import models
from controller_stub.controller.daemon import Service

HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT = 1, 3  # seconds; the defaults are 2 and 6


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.fabric = LocalFabric(workdir)
        self.fabric.save()
        config = workdir / "controller.conf"
        config.write_text(f"[controller]\nid = demo\nworkers = 2\npoll_seconds = 0.05\n"
                          f"[database]\nurl = sqlite:///{workdir}/controller.db\n"
                          f"[compute]\ndriver = local\nworkdir = {workdir}\n"
                          "[api]\nbind_port = 0\n"
                          f"[health_manager]\nenabled = true\nbind_port = 0\n"
                          f"heartbeat_key = {secrets.token_hex(16)}\n"
                          f"heartbeat_interval = {HEARTBEAT_INTERVAL}\n"
                          f"heartbeat_timeout = {HEARTBEAT_TIMEOUT}\n",
                          encoding="utf-8")
        self.service = Service(config_mod.load(config))
        self.api = self.service.api
        self.members: list[Any] = []
        self.client: Any = None
        self.lbs: dict[str, dict[str, Any]] = {}

    # -- helpers -------------------------------------------------------------------

    def _get(self, address: str) -> str:
        import http.client

        def get() -> str:
            conn = http.client.HTTPConnection(address, 80, timeout=3)
            try:
                conn.request("GET", "/")
                return json.loads(conn.getresponse().read())["member"]
            finally:
                conn.close()
        return nsutil.run_in(self.client.namespace, get)

    def _spread(self, address: str, n: int = 12) -> dict[str, int]:
        return dict(collections.Counter(self._get(address) for _ in range(n)))

    def _wait_serving(self, address: str, expected: int, timeout: float = 20.0) -> float:
        start = time.monotonic()
        while True:
            try:
                if len(self._spread(address, 6)) == expected:
                    return time.monotonic() - start
            except OSError:
                pass
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"{address} is not serving {expected} members")
            time.sleep(0.1)

    def _until(self, condition: Any, timeout: float, what: str) -> float:
        """Seconds until ``condition()`` holds, polled every 20 ms."""
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"no {what} within {timeout:.0f}s")
            time.sleep(0.02)
        return time.monotonic() - start

    def _monitored(self, amphora_ids: set[str]) -> bool:
        with self.service.sessions() as session:
            return set(session.scalars(select(models.AmphoraHealth.amphora_id).where(
                models.AmphoraHealth.amphora_id.in_(amphora_ids)))) == amphora_ids

    def _reloads(self, lb_id: str) -> list[int]:
        return [haproxy_cli.reloads(Path(a["compute_data"]["root"]) / "lib" / lb_id /
                                    "master.sock") for a in self.api.amphorae(lb_id)]

    # -- steps -------------------------------------------------------------------------

    def step_members_and_client(self) -> None:
        _say("starting the controller, two members and a client on the fabric")
        print(f"    fabric {self.fabric.prefix} in {self.workdir}")
        self.service.start()
        self.members = [self.fabric.create_member("member", name=f"member-{i}") for i in (1, 2)]
        self.client = self.fabric.create_client("client")
        for member in self.members:
            print(f"    {member.name} at {member.ipv4}")

    def step_create(self) -> None:
        for topology in ("SINGLE", "ACTIVE_STANDBY"):
            _say(f"creating the {topology} load balancer (HTTP listener, two members)")
            profile = self.api.create_flavor_profile(
                f"demo-{topology.lower()}", {"loadbalancer_topology": topology})
            flavor = self.api.create_flavor(f"demo-{topology.lower()}", profile["id"])
            start = time.monotonic()
            lb = self.api.create_load_balancer(name=f"demo-{topology.lower()}",
                                               flavor_id=flavor["id"], listeners=[{
                "name": "http", "protocol": "HTTP", "protocol_port": 80,
                "default_pool": {"name": "web", "protocol": "HTTP",
                                 "lb_algorithm": "ROUND_ROBIN",
                                 "members": [{"address": str(m.ipv4), "protocol_port": 80,
                                              "name": m.name} for m in self.members]}}])
            print(f"    {lb['id']}: {lb['provisioning_status']}")
            lb = self.api.wait(lb["id"], timeout=60)
            if lb["provisioning_status"] != "ACTIVE":
                raise RuntimeError(f"create failed: {lb.get('status_reason')}")
            active = time.monotonic() - start
            serving = self._wait_serving(lb["vip_address"], 2)
            print(f"    ACTIVE after {active:.2f}s, VIP {lb['vip_address']} serving after "
                  f"{active + serving:.2f}s")
            for amphora in self.api.amphorae(lb["id"]):
                print(f"    amphora {amphora['id']} {amphora['role']} "
                      f"mgmt {amphora['lb_network_ip']} vrrp {amphora['vrrp_ip']}")
            self.lbs[topology] = lb

    def step_traffic_and_status(self) -> None:
        for topology, lb in self.lbs.items():
            _say(f"{topology}: 12 requests through {lb['vip_address']} and the status tree")
            print(f"    {self._spread(lb['vip_address'])}")
            print("    " + json.dumps(self.api.status_tree(lb["id"])["statuses"],
                                      indent=None)[:600])

    def step_member_change(self) -> None:
        for topology, lb in self.lbs.items():
            _say(f"{topology}: removing and re-adding member-2 (runtime API, no reload)")
            before = self._reloads(lb["id"])
            pool_id = lb["pools"][0]["id"]
            member = next(m for m in self.api.get_pool(pool_id)["members"]
                          if self.api.get_member(m["id"])["name"] == "member-2")
            start = time.monotonic()
            self.api.delete_member(member["id"])
            self.api.wait(lb["id"])
            print(f"    deleted in {time.monotonic() - start:.2f}s: "
                  f"{self._spread(lb['vip_address'])}")
            start = time.monotonic()
            self.api.create_member(pool_id, address=str(self.members[1].ipv4),
                                   protocol_port=80, name="member-2")
            self.api.wait(lb["id"])
            self._wait_serving(lb["vip_address"], 2)
            print(f"    added in {time.monotonic() - start:.2f}s: "
                  f"{self._spread(lb['vip_address'])}")
            print(f"    HAProxy reloads per amphora: {before} -> {self._reloads(lb['id'])}")

    def step_listener_change(self) -> None:
        for topology, lb in self.lbs.items():
            _say(f"{topology}: listener connection_limit 5000 (new config, reload)")
            before = self._reloads(lb["id"])
            self.api.update_listener(lb["listeners"][0]["id"], connection_limit=5000)
            done = self.api.wait(lb["id"])
            print(f"    {done['provisioning_status']}; reloads {before} -> "
                  f"{self._reloads(lb['id'])}; {self._spread(lb['vip_address'])}")

    def step_controller_failover(self) -> None:
        lb = self.lbs["ACTIVE_STANDBY"]
        vip, api = lb["vip_address"], self.api
        amphorae = api.amphorae(lb["id"])
        self._until(lambda: self._monitored({a["id"] for a in amphorae}), 15,
                    "heartbeat from every amphora")
        master = next(a for a in amphorae if a["role"] == "MASTER")
        survivor = next(a for a in amphorae if a["id"] != master["id"])
        _say(f"ACTIVE_STANDBY: the MASTER amphora {master['id']} dies (every process "
             f"SIGKILLed, its namespaces deleted); a client polls the VIP every 20 ms")
        with Prober(self.client.namespace, vip, interval=0.02, timeout=0.5) as prober:
            prober.wait_good(time.monotonic(), timeout=15)
            start = time.monotonic()
            data = master["compute_data"]
            nsutil.crash(data["haproxy_namespace"], data["namespace"])
            self._until(lambda: api.get_load_balancer(lb["id"])["provisioning_status"]
                        == "PENDING_UPDATE", 30, "failover")
            print(f"    failover started {time.monotonic() - start:.1f}s after the kill "
                  f"(stale: no heartbeat for {HEARTBEAT_TIMEOUT}s)")

            def replaced() -> bool:
                current = api.get_load_balancer(lb["id"])
                if current["provisioning_status"] == "ERROR":
                    raise RuntimeError(f"failover failed: {current['status_reason']}")
                return (current["provisioning_status"] == "ACTIVE" and master["id"] not in
                        {a["id"] for a in api.amphorae(lb["id"])})
            self._until(replaced, 60, "replacement")
            healed = time.monotonic() - start
            prober.wait_good(time.monotonic())
            failed, sent = prober.failed(start), sum(p.start >= start for p in prober.probes)
        print(f"    data-plane outage {outage(list(prober.probes), start) * 1000:.0f} ms "
              f"({failed} of {sent} probes failed): the standby took the VIP")
        after = {a["id"]: a for a in api.amphorae(lb["id"])}
        new = next(a for i, a in after.items() if i != survivor["id"])
        print(f"    replaced {healed:.1f}s after the kill: {survivor['id']} "
              f"{after[survivor['id']]['role']} (kept the VIP), new amphora {new['id']} "
              f"{new['role']} {new['status']}")
        if (after[survivor["id"]]["role"], new["role"]) != ("MASTER", "BACKUP"):
            raise RuntimeError(f"unexpected roles after the failover: {after}")
        status = api.get_load_balancer(lb["id"])["operating_status"]
        print(f"    load balancer {status}; {self._spread(vip)}")
        if status != "ONLINE":
            raise RuntimeError(f"the load balancer is {status} after the failover")

    def step_delete(self) -> None:
        _say("deleting both load balancers (cascade)")
        for lb in self.lbs.values():
            self.api.delete_load_balancer(lb["id"], cascade=True)
        for lb in self.lbs.values():
            self.api.wait_deleted(lb["id"])
        self.lbs.clear()
        print(f"    load balancers left: {self.api.list_load_balancers()}")

    def step_failover(self) -> None:
        """An ACTIVE_STANDBY pair pushed through the agent API directly
        (controller_stub/active_standby.py, with HAProxy tracking), failing over."""
        _say("failover: two more amphorae, one VIP owned by keepalived (VRRPv3)")
        pair = build_pair(self.fabric, self.members)
        try:
            print(f"    VIP {pair.vip} on amphora {pair.sides[0].amphora.id}")
            with Prober(self.client.namespace, pair.vip) as prober:
                prober.wait_good(time.monotonic(), timeout=15)
                _say("failover: the master's VIP and management links go down "
                     "(a new connection every 5 ms)")
                start = time.monotonic()
                pair.links_down(0)
                pair.wait(lambda: pair.holders() == [1])
                prober.wait_good(time.monotonic())
                time.sleep(1.0)
                print(f"    VIP now on {pair.sides[1].amphora.id}; outage "
                      f"{outage(list(prober.probes), start) * 1000:.0f} ms "
                      f"({prober.failed(start)} probes failed)")
                _say("failover: the old master's links come back; it stays backup (nopreempt)")
                back = time.monotonic()
                pair.links_up(0)
                time.sleep(2.0)
                where = "the new master" if pair.holders() == [1] else f"{pair.holders()}"
                print(f"    VIP still on {where}; failed probes since: {prober.failed(back)}")
        finally:
            pair.delete()

    def run(self) -> None:
        for step in (self.step_members_and_client, self.step_create,
                     self.step_traffic_and_status, self.step_member_change,
                     self.step_listener_change, self.step_controller_failover,
                     self.step_delete, self.step_failover):
            step()

    def close(self) -> None:
        self.service.stop()
        self.fabric.teardown()


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root: it creates network namespaces", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="amp-demo-", dir="/tmp"))
    demo = None
    try:
        demo = Demo(workdir)
        demo.run()
        return 0
    finally:
        leftovers: list[str] = []
        if demo is not None:
            demo.close()
            leftovers = demo.fabric.leftovers()
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"    left behind: {leftovers or 'nothing'}")


if __name__ == "__main__":
    sys.exit(main())
