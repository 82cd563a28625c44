"""`make demo`: a load balancer end to end on the embedded default.

On this host, with amphorae as network namespaces (the local fabric): boot an
amphora running the real agent (gunicorn, mutual TLS), plug its VIP and a
member network through the agent API the way Octavia's controller does,
start two members, render an HTTP load balancer with haproxy_templates for
what the amphora reports, push and start it, send traffic from a client
namespace through the VIP, drain a member at runtime (no reload), and tear
everything down. Needs root (namespaces, veth pairs).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from amphora_contract import agent_config
from controller_stub.active_standby import Prober, build_pair, outage
from controller_stub.compute import nsutil
from controller_stub.compute.local import LocalFabric, network_body, vip_body
from controller_stub.loadbalancer import backend_name, http_document, render_for


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _get(namespace: str, address: str) -> dict[str, str]:
    import http.client

    def get() -> dict[str, str]:
        conn = http.client.HTTPConnection(address, 80, timeout=3)
        try:
            conn.request("GET", "/")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()
    return nsutil.run_in(namespace, get)


def _spread(namespace: str, address: str, n: int = 12) -> dict[str, int]:
    return dict(collections.Counter(_get(namespace, address)["member"] for _ in range(n)))


def _failover_demo(fabric: LocalFabric, members: list, client_ns: str) -> None:
    """ACTIVE_STANDBY: two amphorae, one VIP; the master's links go down."""
    _say("ACTIVE_STANDBY: two more amphorae, one VIP owned by keepalived (VRRPv3)")
    pair = build_pair(fabric, members)
    try:
        print(f"    VIP {pair.vip} on amphora {pair.sides[pair.holders()[0]].amphora.id}")
        with Prober(client_ns, pair.vip) as prober:
            prober.wait_good(time.monotonic(), timeout=15)
            _say("the master's VIP and management links go down (new connection every 5 ms)")
            start = time.monotonic()
            pair.links_down(0)
            pair.wait(lambda: pair.holders() == [1])
            prober.wait_good(time.monotonic())
            time.sleep(1.0)
            print(f"    VIP now on {pair.sides[1].amphora.id}; outage "
                  f"{outage(list(prober.probes), start) * 1000:.0f} ms "
                  f"({prober.failed(start)} probes failed)")
            _say("the old master's links come back: it stays backup (nopreempt)")
            back = time.monotonic()
            pair.links_up(0)
            time.sleep(2.0)
            where = "the new master" if pair.holders() == [1] else f"amphorae {pair.holders()}"
            print(f"    VIP still on {where}; failed probes since: {prober.failed(back)}")
    finally:
        pair.delete()


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root: it creates network namespaces", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="amp-demo-", dir="/tmp"))
    fabric = LocalFabric(workdir)
    try:
        _say("booting an amphora (namespace + real agent with mTLS)")
        start = time.monotonic()
        amphora = fabric.create_amphora()
        client = fabric.client(amphora)
        print(f"    amphora {amphora.id} agent at https://{amphora.mgmt_ip}:9443 "
              f"ready in {time.monotonic() - start:.2f}s")
        print(f"    /1.0/info: {json.dumps(client.info())}")

        _say("plugging the VIP and a member network (Nova attaches, the agent plugs)")
        vip = fabric.hotplug_port(amphora, "vip")
        member_port = fabric.hotplug_port(amphora, "member")
        print(f"    {client.plug_vip(str(vip.ipv4), vip_body(vip, ipv6=True))['details']}")
        print(f"    {client.plug_network(network_body(member_port))['details']}")

        _say("starting two members and a client")
        members = [fabric.create_member("member", name=f"member-{i}") for i in (1, 2)]
        user = fabric.create_client("client")
        for member in members:
            print(f"    {member.name} at {member.ipv4}")

        _say("rendering an HTTP load balancer for this amphora and pushing it")
        member_ids = [str(uuid.uuid4()) for _ in members]
        document = http_document(amphora_id=amphora.id, vip=str(vip.ipv4),
                                 additional_vips=[str(vip.ipv6)],
                                 members=[(mid, str(m.ipv4))
                                          for mid, m in zip(member_ids, members, strict=True)])
        config = agent_config.load(amphora.config_file)
        text = render_for(client, document, amphora_id=amphora.id,
                          base_path=config.base_path, cert_dir=config.base_cert_dir)
        lb_id = document["id"]
        client.upload_haproxy(amphora.id, lb_id, text)
        print(f"    {client.lb_action(lb_id, 'start')['details'].splitlines()[-1]}")
        print(f"    listeners: {json.dumps(client.listeners())}")

        deadline = time.monotonic() + 15
        while len(_spread(user.namespace, str(vip.ipv4))) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("members never came up")
            time.sleep(0.2)
        for address in (str(vip.ipv4), str(vip.ipv6)):
            print(f"    12 requests to {address}: {_spread(user.namespace, address)}")

        _say("draining member-1 at runtime (HAProxy runtime API, no reload)")
        backend = backend_name(document)
        start = time.monotonic()
        applied = client.set_server(lb_id, backend, member_ids[0], state="drain")
        print(f"    applied by {applied} in {(time.monotonic() - start) * 1000:.1f} ms")
        print(f"    12 requests: {_spread(user.namespace, str(vip.ipv4))}")
        client.set_server(lb_id, backend, member_ids[0], state="ready")
        print(f"    ready again: {_spread(user.namespace, str(vip.ipv4))}")

        client.delete_listener(lb_id)
        client.close()
        _failover_demo(fabric, members, user.namespace)
        _say("tearing the fabric down")
        return 0
    finally:
        fabric.teardown()
        shutil.rmtree(workdir, ignore_errors=True)
        leftovers = fabric.leftovers()
        print(f"    left behind: {leftovers or 'nothing'}")


if __name__ == "__main__":
    sys.exit(main())
