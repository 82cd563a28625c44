"""``amphora-ctl lb|listener|pool|member|healthmonitor|l7policy|l7rule|flavor|
flavorprofile|az|azprofile|provider|quota|amphora|network``: the controller's API
(Octavia's load-balancer v2) through openstacksdk's ``load_balancer`` proxy.

Each resource has ``list``, ``show``, ``create KEY=VALUE...``, ``set ID KEY=VALUE...``
and ``delete``; values are JSON when they parse as JSON (``weight=3``,
``admin_state_up=false``, ``rules='[...]'``) and text otherwise. ``--wait``
follows a change until its provisioning_status settles.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from controller_stub.commands import endpoint, output


@dataclass(frozen=True)
class Kind:
    command: str
    path: str         # the collection's path; {parent} for members and rules
    root: str         # the key of one object in bodies
    collection: str   # the key of a list
    columns: tuple[str, ...]
    help: str
    parent: str | None = None   # what the parent positional argument names
    waits: bool = True          # has a provisioning_status to follow


_STATUS = ("provisioning_status", "operating_status")
KINDS = (
    Kind("lb", "/lbaas/loadbalancers", "loadbalancer", "loadbalancers",
         ("id", "name", "vip_address", *_STATUS, "provider"), "load balancers"),
    Kind("listener", "/lbaas/listeners", "listener", "listeners",
         ("id", "name", "protocol", "protocol_port", *_STATUS), "listeners"),
    Kind("pool", "/lbaas/pools", "pool", "pools",
         ("id", "name", "protocol", "lb_algorithm", *_STATUS), "pools"),
    Kind("member", "/lbaas/pools/{parent}/members", "member", "members",
         ("id", "name", "address", "protocol_port", "weight", *_STATUS), "a pool's members",
         parent="pool"),
    Kind("healthmonitor", "/lbaas/healthmonitors", "healthmonitor", "healthmonitors",
         ("id", "name", "type", "delay", "timeout", "max_retries", *_STATUS),
         "health monitors"),
    Kind("l7policy", "/lbaas/l7policies", "l7policy", "l7policies",
         ("id", "name", "action", "position", "listener_id", *_STATUS), "L7 policies"),
    Kind("l7rule", "/lbaas/l7policies/{parent}/rules", "rule", "rules",
         ("id", "type", "compare_type", "key", "value", "invert", *_STATUS),
         "an L7 policy's rules", parent="L7 policy"),
    Kind("flavor", "/lbaas/flavors", "flavor", "flavors",
         ("id", "name", "enabled", "flavor_profile_id", "description"), "flavors",
         waits=False),
    Kind("flavorprofile", "/lbaas/flavorprofiles", "flavorprofile", "flavorprofiles",
         ("id", "name", "provider_name", "flavor_data"), "flavor profiles", waits=False),
    Kind("az", "/lbaas/availabilityzones", "availability_zone", "availability_zones",
         ("name", "enabled", "availability_zone_profile_id", "description"),
         "availability zones", waits=False),
    Kind("azprofile", "/lbaas/availabilityzoneprofiles", "availability_zone_profile",
         "availability_zone_profiles",
         ("id", "name", "provider_name", "availability_zone_data"),
         "availability zone profiles", waits=False),
)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def pairs(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        out[key] = _value(value)
    return out


def _http_get(conn: Any, path: str) -> Any:
    return _http_send(conn, "get", path)


def _http_send(conn: Any, method: str, path: str, body: Any = None) -> Any:
    """One request through the SDK's load_balancer proxy (its endpoint and auth), with
    Octavia's own bodies: the SDK's resource classes would drop fields they lack."""
    kwargs = {"json": body} if body is not None else {}
    response = getattr(conn.load_balancer, method)(path, raise_exc=False, **kwargs)
    if response.status_code >= 400:
        from openstack import exceptions
        exceptions.raise_from_response(response)
    return response.json() if response.content else None


def _listing(conn: Any, path: str, collection: str,
             filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every page of a list: the filters, plus the marker of each ``next`` link."""
    params = {k: json.dumps(v) if isinstance(v, bool) else v
              for k, v in (filters or {}).items()}
    rows: list[dict[str, Any]] = []
    while True:
        body = _http_get(conn, f"{path}?{urlencode(params)}" if params else path)
        rows += body[collection]
        following = next((link["href"] for link in body.get(f"{collection}_links", [])
                          if link["rel"] == "next"), None)
        marker = parse_qs(urlsplit(following).query).get("marker") if following else None
        if not marker or not body[collection]:
            return rows
        params["marker"] = marker[0]


# -- generic resource actions --------------------------------------------------------------

def _path(args: argparse.Namespace) -> str:
    kind: Kind = args.kind
    return kind.path.format(parent=quote(args.parent, safe="")) if kind.parent else kind.path


def _one(args: argparse.Namespace, object_id: str) -> str:
    return f"{_path(args)}/{quote(object_id, safe='')}"


def _list(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    rows = _listing(endpoint.connect(args), _path(args), kind.collection, pairs(args.filters))
    output.table(rows, kind.columns, as_json=args.json)
    return 0


def _show(args: argparse.Namespace) -> int:
    obj = _http_get(endpoint.connect(args), _one(args, args.id))[args.kind.root]
    output.record(obj, as_json=args.json)
    return 0


def _settle(args: argparse.Namespace, conn: Any, obj: dict[str, Any],
            deleting: bool = False) -> dict[str, Any] | None:
    from openstack import exceptions
    kind: Kind = args.kind
    if not (args.wait and kind.waits):
        return obj
    object_id = obj.get("id") or obj.get("name") or ""

    def poll() -> dict[str, Any] | None:
        try:
            return _http_get(conn, _one(args, object_id))[kind.root]
        except exceptions.NotFoundException:
            return None
    return output.follow(f"{kind.command} {object_id}", poll, timeout=args.timeout,
                         deleting=deleting, initial=obj.get("provisioning_status"))


def _create(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    conn = endpoint.connect(args)
    obj = _http_send(conn, "post", _path(args), {kind.root: pairs(args.attrs)})[kind.root]
    obj = _settle(args, conn, obj) or obj
    output.record(obj, as_json=args.json)
    return 0


def _set(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    conn = endpoint.connect(args)
    attrs = pairs(args.attrs)
    if not attrs:
        raise ValueError("nothing to change: give KEY=VALUE pairs")
    obj = _http_send(conn, "put", _one(args, args.id), {kind.root: attrs})[kind.root]
    obj = _settle(args, conn, obj) or obj
    output.record(obj, as_json=args.json)
    return 0


def _delete(args: argparse.Namespace) -> int:
    conn = endpoint.connect(args)
    cascade = "?cascade=true" if getattr(args, "cascade", False) else ""
    _http_send(conn, "delete", _one(args, args.id) + cascade)
    _settle(args, conn, {"id": args.id}, deleting=True)
    return 0


# -- extras --------------------------------------------------------------------------------

def _lb_status(args: argparse.Namespace) -> int:
    body = _http_get(endpoint.connect(args), f"{_one(args, args.id)}/status")
    if args.json:
        output.emit_json(body)
    else:
        output.status_tree(body["statuses"])
    return 0


_STATS = ("active_connections", "bytes_in", "bytes_out", "request_errors",
          "total_connections")


def _stats(args: argparse.Namespace) -> int:
    stats = _http_get(endpoint.connect(args), f"{_one(args, args.id)}/stats")["stats"]
    output.record({k: stats.get(k) for k in _STATS}, as_json=args.json)
    return 0


def _lb_failover(args: argparse.Namespace) -> int:
    conn = endpoint.connect(args)
    _http_send(conn, "put", f"{_one(args, args.id)}/failover")
    obj = _settle(args, conn, {"id": args.id})
    if args.wait and obj is not None:
        output.record(obj, as_json=args.json)
    return 0


_AMPHORA_COLUMNS = ("id", "loadbalancer_id", "status", "role", "lb_network_ip", "ha_ip",
                    "cached_zone")


def _amphora(args: argparse.Namespace) -> int:
    conn = endpoint.connect(args)
    one = f"/octavia/amphorae/{quote(getattr(args, 'id', '') or '', safe='')}"
    if args.action == "list":
        rows = _listing(conn, "/octavia/amphorae", "amphorae", pairs(args.filters))
        output.table(rows, _AMPHORA_COLUMNS, as_json=args.json)
    elif args.action == "show":
        output.record(_http_get(conn, one)["amphora"], as_json=args.json)
    elif args.action in ("failover", "configure"):
        _http_send(conn, "put", f"{one}/{'config' if args.action == 'configure' else 'failover'}")
    else:
        rows = _http_get(conn, f"{one}/stats")["amphora_stats"]
        output.table(rows, ("listener_id", *_STATS), as_json=args.json)
    return 0


_QUOTA_COLUMNS = ("project_id", "loadbalancer", "listener", "pool", "member",
                  "healthmonitor", "l7policy", "l7rule")


def _quota_row(quota: dict[str, Any]) -> dict[str, Any]:
    return {k: quota.get(k) for k in _QUOTA_COLUMNS if k in quota}


def _quota(args: argparse.Namespace) -> int:
    """Raw requests through the proxy: the SDK's Quota knows neither l7policy nor l7rule."""
    conn = endpoint.connect(args)
    if args.action == "list":
        rows = [_quota_row(q) for q in _http_get(conn, "/lbaas/quotas")["quotas"]]
        output.table(rows, _QUOTA_COLUMNS, as_json=args.json)
    elif args.action == "defaults":
        output.record(_quota_row(_http_get(conn, "/lbaas/quotas/defaults")["quota"]),
                      as_json=args.json)
    elif args.action == "show":
        output.record(_quota_row(_http_get(conn, f"/lbaas/quotas/{args.project}")["quota"]),
                      as_json=args.json)
    elif args.action == "set":
        body = _http_send(conn, "put", f"/lbaas/quotas/{args.project}",
                          {"quota": pairs(args.attrs)})
        output.record(_quota_row(body["quota"]), as_json=args.json)
    else:
        _http_send(conn, "delete", f"/lbaas/quotas/{args.project}")
    return 0


def _provider(args: argparse.Namespace) -> int:
    conn = endpoint.connect(args)
    if args.action == "list":
        output.table(_http_get(conn, "/lbaas/providers")["providers"],
                     ("name", "description"), as_json=args.json)
        return 0
    flavor = _http_get(conn, f"/lbaas/providers/{args.name}/flavor_capabilities")
    zone = _http_get(conn, f"/lbaas/providers/{args.name}/availability_zone_capabilities")
    rows = ([{"kind": "flavor", **c} for c in flavor["flavor_capabilities"]]
            + [{"kind": "availability zone", **c}
               for c in zone["availability_zone_capabilities"]])
    output.table(rows, ("kind", "name", "description"), as_json=args.json)
    return 0


def _network(args: argparse.Namespace) -> int:
    conn = endpoint.connect(args)
    networks = _http_get(conn, "/networks")["networks"]
    subnets = _http_get(conn, "/subnets")["subnets"]
    if args.json:
        output.emit_json({"networks": networks, "subnets": subnets})
        return 0
    output.table(networks, ("id", "name", "subnets"), title="networks")
    output.table(subnets, ("id", "name", "network_id", "cidr", "ip_version", "gateway_ip"),
                 title="subnets")
    return 0


# -- parsers -------------------------------------------------------------------------------

def _common(wait: bool = False) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    endpoint.add_arguments(parent)
    parent.add_argument("--json", action="store_true", help="print JSON instead of tables")
    if wait:
        parent.add_argument("--wait", action="store_true",
                            help="follow provisioning_status until the change settles")
        parent.add_argument("--timeout", type=float, default=300.0,
                            help="seconds --wait waits (default 300)")
    return parent


def _register_kind(subparsers: Any, kind: Kind) -> None:
    plain, waiting = _common(), _common(wait=kind.waits)
    parser = subparsers.add_parser(kind.command, help=kind.help,
                                   description=f"{kind.help.capitalize()} in the API.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    parent = [("parent", f"the {kind.parent}'s id")] if kind.parent else []
    key = "name" if kind.command == "az" else "id"

    def add(name: str, handler: Any, helptext: str, parents: list[Any],
            positional: list[tuple[str, str]]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=helptext, parents=parents)
        for dest, text in positional:
            p.add_argument(dest, help=text)
        p.set_defaults(handler=handler, kind=kind)
        return p

    ls = add("list", _list, f"list {kind.help}", [plain], parent)
    ls.add_argument("filters", nargs="*", metavar="KEY=VALUE", help="filters")
    add("show", _show, "show one", [plain], [*parent, ("id", key)])
    create = add("create", _create, "create one", [waiting], parent)
    create.add_argument("attrs", nargs="*", metavar="KEY=VALUE", help="the object's fields")
    update = add("set", _set, "change one", [waiting], [*parent, ("id", key)])
    update.add_argument("attrs", nargs="*", metavar="KEY=VALUE", help="fields to change")
    delete = add("delete", _delete, "delete one", [waiting], [*parent, ("id", key)])
    if kind.command == "lb":
        delete.add_argument("--cascade", action="store_true",
                            help="delete its listeners, pools and members too")
        add("status", _lb_status, "the status tree", [plain], [("id", "id")])
        add("failover", _lb_failover, "replace its amphorae", [waiting], [("id", "id")])
    if kind.command in ("lb", "listener"):
        add("stats", _stats, "traffic counters", [plain], [("id", "id")])


def register(subparsers: Any) -> None:
    for kind in KINDS:
        _register_kind(subparsers, kind)
    plain = _common()

    amphora = subparsers.add_parser("amphora", help="amphorae (admin)",
                                    description="The operator's view of amphorae.")
    sub = amphora.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list amphorae", parents=[plain])
    ls.add_argument("filters", nargs="*", metavar="KEY=VALUE")
    for name, text in (("show", "show one"), ("failover", "replace one"),
                       ("configure", "push the agent configuration"),
                       ("stats", "per-listener counters")):
        sub.add_parser(name, help=text, parents=[plain]).add_argument("id")
    amphora.set_defaults(handler=_amphora)

    quota = subparsers.add_parser("quota", help="per-project quotas",
                                  description="Per-project limits; -1 is unlimited.")
    sub = quota.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="projects with their own quotas", parents=[plain])
    sub.add_parser("defaults", help="the default quotas", parents=[plain])
    sub.add_parser("show", help="a project's quotas", parents=[plain]).add_argument("project")
    qset = sub.add_parser("set", help="set a project's quotas", parents=[plain])
    qset.add_argument("project")
    qset.add_argument("attrs", nargs="+", metavar="KEY=VALUE",
                      help="e.g. loadbalancer=10 member=-1")
    sub.add_parser("reset", help="back to the defaults", parents=[plain]).add_argument(
        "project")
    quota.set_defaults(handler=_quota)

    provider = subparsers.add_parser("provider", help="provider drivers",
                                     description="Providers and their capabilities.")
    sub = provider.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="enabled providers", parents=[plain])
    sub.add_parser("capabilities", help="flavor and availability zone keys",
                   parents=[plain]).add_argument("name")
    provider.set_defaults(handler=_provider)

    network = subparsers.add_parser("network", help="the fabric's networks and subnets",
                                    description="Networks and subnets VIPs and members "
                                                "may name, with their stable ids.")
    sub = network.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="networks and subnets", parents=[plain])
    network.set_defaults(handler=_network)
