"""`make demo`: load balancers declared to the controller, built on this host.

The embedded default: amphorae are network namespaces on the local fabric
(the real agent under gunicorn with mutual TLS in each), state in SQLite,
the controller's workers in this process. The demo creates a SINGLE and an
ACTIVE_STANDBY load balancer, each with an HTTP listener and two members,
sends traffic through both VIPs from a client namespace, shows the status
trees, removes and re-adds a member (runtime API, no reload), changes a
listener (new config, reload), deletes everything, and shows an
ACTIVE_STANDBY pair failing over with its measured outage. Needs root.

Each step is one method of :class:`Demo`, run in order by :meth:`Demo.run`;
later segments slot in as further steps.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from controller_stub import haproxy_cli
from controller_stub.active_standby import Prober, build_pair, outage
from controller_stub.compute import nsutil
from controller_stub.compute.local import LocalFabric
from controller_stub.controller import config as config_mod
from controller_stub.controller.daemon import Service


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
                          "[api]\nbind_port = 0\n",
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

    def _reloads(self, lb_id: str) -> list[int]:
        return [haproxy_cli.reloads(Path(a["compute_data"]["root"]) / "lib" / lb_id /
                                    "master.sock") for a in self.api.amphorae(lb_id)]

    # -- steps -------------------------------------------------------------------------

    def step_members_and_client(self) -> None:
        _say("starting the controller, two members and a client on the fabric")
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
                     self.step_listener_change, self.step_delete, self.step_failover):
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
