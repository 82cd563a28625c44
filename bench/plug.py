"""Benchmark: amphora boot on the local fabric and plug-VIP latency.

Creates several amphorae (namespace, management veth, config and certs, real
agent under gunicorn with mTLS, until ``GET /`` answers), then times
``POST /1.0/plug/vip`` (IPv4 + IPv6 VIP, first plug creates the HAProxy
namespace) and ``POST /1.0/plug/network`` on each, as the controller sees
them (HTTPS round trip included). Prints one JSON object per result (median,
min, max over the runs); the target is plug VIP <= 0.5 s. Needs root;
everything is removed at the end.

    .venv/bin/python bench/plug.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller_stub.compute.local import LocalFabric, network_body, vip_body

TARGET_PLUG_VIP_S = 0.5


def _result(name: str, samples: list[float], **extra: object) -> dict[str, object]:
    return {"bench": "plug", "metric": name, "unit": "s", "runs": len(samples),
            "median": round(statistics.median(samples), 4),
            "min": round(min(samples), 4), "max": round(max(samples), 4), **extra}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    boot, plug_vip, plug_net = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-plug-") as workdir, \
            LocalFabric(workdir) as fabric:
        for _ in range(args.runs):
            start = time.perf_counter()
            amphora = fabric.create_amphora()
            boot.append(time.perf_counter() - start)
            vip = fabric.hotplug_port(amphora, "vip")
            member = fabric.hotplug_port(amphora, "member")
            with fabric.client(amphora, retries=0) as client:
                client.api_version()  # connection established, as for a live controller
                start = time.perf_counter()
                client.plug_vip(str(vip.ipv4), vip_body(vip))
                plug_vip.append(time.perf_counter() - start)
                start = time.perf_counter()
                client.plug_network(network_body(member))
                plug_net.append(time.perf_counter() - start)
            fabric.delete_amphora(amphora)
        leftovers = fabric.leftovers()
    for result in (
        _result("amphora_boot", boot, what="namespace + mgmt veth + certs + agent answering"),
        _result("plug_vip", plug_vip, target=TARGET_PLUG_VIP_S,
                ok=statistics.median(plug_vip) <= TARGET_PLUG_VIP_S,
                what="IPv4+IPv6 VIP, creates the HAProxy namespace"),
        _result("plug_network", plug_net, what="member port, IPv4+IPv6 fixed IPs"),
    ):
        print(json.dumps(result), flush=True)
    return 0 if not leftovers and statistics.median(plug_vip) <= TARGET_PLUG_VIP_S else 1


if __name__ == "__main__":
    sys.exit(main())
