"""`amphora-ctl stats`: one LB's statistics, from the agent's metrics endpoint.

The numbers are HAProxy's own exporter output as the agent serves it at
``/1.0/ext/metrics`` (totals since the HAProxy worker started, summed by the
exporter over the current workers), not the heartbeats' deltas: a table an
operator reads should not depend on which controller got which datagram.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from controller_stub.client import AgentClient

# column -> HAProxy exporter metric (frontend_/backend_/server_ prefixed)
COLUMNS = {
    "status": "status",
    "cur_sessions": "current_sessions",
    "total_sessions": "sessions_total",
    "bytes_in": "bytes_in_total",
    "bytes_out": "bytes_out_total",
    "req_errors": "request_errors_total",
}
KINDS = ("frontend", "backend", "server")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stats", help="an LB's statistics from the agent's metrics",
        description="Print one load balancer's frontends, backends and servers with their "
                    "status, sessions and bytes, read from the agent's /1.0/ext/metrics "
                    "(HAProxy's exporter).")
    parser.add_argument("lb_id")
    parser.add_argument("--address", required=True, help="the agent's address")
    parser.add_argument("--amphora-id", required=True, help="the amphora id (server cert name)")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--client-cert", required=True)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(handler=_stats)


def _status(labels: dict[str, str], value: float, into: dict[str, Any]) -> None:
    if value == 1 and labels.get("state"):
        into["status"] = labels["state"]


def lb_stats(text: str, lb_id: str) -> list[dict[str, Any]]:
    """Rows (kind, proxy, server, COLUMNS...) of one LB from the metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    wanted = {f"haproxy_{kind}_{metric}": (kind, column)
              for kind in KINDS for column, metric in COLUMNS.items()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found = wanted.get(sample.name)
            if found is None or sample.labels.get("lb_id") != lb_id:
                continue
            kind, column = found
            proxy = sample.labels.get("proxy", "")
            server = sample.labels.get("server", "") if kind == "server" else ""
            row = rows.setdefault((kind, proxy, server), {"kind": kind, "proxy": proxy,
                                                          "server": server})
            if column == "status":
                _status(sample.labels, sample.value, row)
            else:
                row[column] = int(sample.value)
    return [rows[key] for key in sorted(rows, key=lambda k: (KINDS.index(k[0]), k[1], k[2]))]


def _stats(args: argparse.Namespace) -> int:
    with AgentClient(args.address, args.amphora_id, ca_file=args.ca_file,
                     client_cert=args.client_cert, port=args.port) as client:
        rows = lb_stats(client.metrics(), args.lb_id)
    if not rows:
        print(f"no statistics for LB {args.lb_id} (not running, or its config has no "
              "exporter frontend)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"LB {args.lb_id}")
    for name in ("kind", "proxy", "server", *COLUMNS):
        table.add_column(name, justify="right" if name not in ("kind", "proxy", "server",
                                                               "status") else "left")
    for row in rows:
        table.add_row(*(str(row.get(name, "")) for name in ("kind", "proxy", "server",
                                                             *COLUMNS)))
    Console().print(table)
    return 0
