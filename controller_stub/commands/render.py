"""`amphora-ctl render`: print the HAProxy config an LB document renders to.

Lets an operator see (and diff) exactly what an amphora would receive, for a
given HAProxy version, without touching any amphora.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from haproxy_templates import (
    DEFAULT_BASE_PATH,
    DEFAULT_CERT_DIR,
    LoadBalancer,
    RenderOptions,
    Target,
    render,
)

_NO_AMPHORA = "00000000-0000-0000-0000-000000000000"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render", help="render an LB's haproxy.cfg",
        description="Render the HAProxy configuration of a load balancer given as an Octavia "
                    "API v2 style JSON document. Without --haproxy-version the local machine's "
                    "HAProxy, OpenSSL, CPUs, memory and open-file limit are used.")
    parser.add_argument("lb_json", metavar="LB.json", help="load balancer document ('-': stdin)")
    parser.add_argument("--haproxy-version", help="target HAProxy version, e.g. 2.6.12-1+deb12u4")
    parser.add_argument("--openssl-version", default="3.0.0",
                        help="target OpenSSL version with --haproxy-version (default 3.0.0)")
    parser.add_argument("--cpu-count", type=int, default=1)
    parser.add_argument("--memory-kb", type=int, default=1024 * 1024)
    parser.add_argument("--fd-limit", type=int, default=1024 * 1024)
    parser.add_argument("--amphora-id", help="amphora the config is for (default: the LB's "
                        "first amphora)")
    parser.add_argument("--base-path", default=DEFAULT_BASE_PATH)
    parser.add_argument("--cert-dir", default=DEFAULT_CERT_DIR)
    parser.add_argument("--output", "-o", help="write here instead of stdout")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(handler=_render)


def _load(path: str) -> Any:
    if path == "-":
        return json.load(sys.stdin)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _render(args: argparse.Namespace) -> int:
    doc = _load(args.lb_json)
    # Accept both a bare LB and Octavia's {"loadbalancer": {...}} envelope.
    if isinstance(doc, dict) and set(doc) == {"loadbalancer"}:
        doc = doc["loadbalancer"]
    lb = LoadBalancer.from_dict(doc)
    if args.haproxy_version:
        target = Target(haproxy_version=args.haproxy_version,
                        openssl_version=args.openssl_version, cpu_count=args.cpu_count,
                        memory_kb=args.memory_kb, fd_limit=args.fd_limit)
    else:
        target = Target.detect()
    amphora_id = args.amphora_id or (lb.amphorae[0].id if lb.amphorae else _NO_AMPHORA)
    text = render(lb, amphora_id=amphora_id, target=target,
                  options=RenderOptions(base_path=args.base_path, cert_dir=args.cert_dir))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0
