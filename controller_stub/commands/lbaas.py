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

from controller_stub.commands import endpoint, output


@dataclass(frozen=True)
class Kind:
    command: str
    sdk: str          # the proxy's singular (create_<sdk>, get_<sdk>, ...)
    plural: str       # the proxy's list method
    columns: tuple[str, ...]
    help: str
    parent: str | None = None   # the sdk name of the parent the proxy needs
    waits: bool = True          # has a provisioning_status to follow


_STATUS = ("provisioning_status", "operating_status")
KINDS = (
    Kind("lb", "load_balancer", "load_balancers",
         ("id", "name", "vip_address", *_STATUS, "provider"), "load balancers"),
    Kind("listener", "listener", "listeners",
         ("id", "name", "protocol", "protocol_port", *_STATUS), "listeners"),
    Kind("pool", "pool", "pools", ("id", "name", "protocol", "lb_algorithm", *_STATUS),
         "pools"),
    Kind("member", "member", "members",
         ("id", "name", "address", "protocol_port", "weight", *_STATUS), "a pool's members",
         parent="pool"),
    Kind("healthmonitor", "health_monitor", "health_monitors",
         ("id", "name", "type", "delay", "timeout", "max_retries", *_STATUS),
         "health monitors"),
    Kind("l7policy", "l7_policy", "l7_policies",
         ("id", "name", "action", "position", "listener_id", *_STATUS), "L7 policies"),
    Kind("l7rule", "l7_rule", "l7_rules",
         ("id", "type", "compare_type", "key", "value", "invert", *_STATUS),
         "an L7 policy's rules", parent="l7_policy"),
    Kind("flavor", "flavor", "flavors",
         ("id", "name", "enabled", "flavor_profile_id", "description"), "flavors",
         waits=False),
    Kind("flavorprofile", "flavor_profile", "flavor_profiles",
         ("id", "name", "provider_name", "flavor_data"), "flavor profiles", waits=False),
    Kind("az", "availability_zone", "availability_zones",
         ("name", "enabled", "availability_zone_profile_id", "description"),
         "availability zones", waits=False),
    Kind("azprofile", "availability_zone_profile", "availability_zone_profiles",
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


def _dict(resource: Any) -> dict[str, Any]:
    data = resource.to_dict(headers=False, computed=False, original_names=True)
    data.pop("location", None)
    return data


def _rows(resources: Any) -> list[dict[str, Any]]:
    return [_dict(r) for r in resources]


def _http_get(conn: Any, path: str) -> Any:
    response = conn.load_balancer.get(path, raise_exc=False)
    if response.status_code >= 400:
        from openstack import exceptions
        exceptions.raise_from_response(response)
    return response.json()


# -- generic resource actions --------------------------------------------------------------

def _proxy(args: argparse.Namespace) -> Any:
    return endpoint.connect(args).load_balancer


def _parent(args: argparse.Namespace) -> tuple[Any, ...]:
    return (args.parent,) if args.kind.parent else ()


def _list(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    filters = pairs(args.filters)
    rows = _rows(getattr(_proxy(args), kind.plural)(*_parent(args), **filters))
    output.table(rows, kind.columns, as_json=args.json)
    return 0


def _show(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    proxy = _proxy(args)
    obj = getattr(proxy, f"get_{kind.sdk}")(args.id, *_parent(args))
    output.record(_dict(obj), as_json=args.json)
    return 0


def _poller(args: argparse.Namespace, proxy: Any, object_id: str) -> Any:
    from openstack import exceptions
    kind: Kind = args.kind

    def poll() -> dict[str, Any] | None:
        try:
            return _dict(getattr(proxy, f"get_{kind.sdk}")(object_id, *_parent(args)))
        except exceptions.NotFoundException:
            return None
    return poll


def _settle(args: argparse.Namespace, proxy: Any, obj: dict[str, Any],
            deleting: bool = False) -> dict[str, Any] | None:
    kind: Kind = args.kind
    if not (args.wait and kind.waits):
        return obj
    object_id = obj.get("id") or obj.get("name") or ""
    return output.follow(f"{kind.command} {object_id}", _poller(args, proxy, object_id),
                         timeout=args.timeout, deleting=deleting,
                         initial=obj.get("provisioning_status"))


def _create(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    proxy = _proxy(args)
    attrs = pairs(args.attrs)
    obj = _dict(getattr(proxy, f"create_{kind.sdk}")(*_parent(args), **attrs))
    obj = _settle(args, proxy, obj) or obj
    output.record(obj, as_json=args.json)
    return 0


def _set(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    proxy = _proxy(args)
    attrs = pairs(args.attrs)
    if not attrs:
        raise ValueError("nothing to change: give KEY=VALUE pairs")
    obj = _dict(getattr(proxy, f"update_{kind.sdk}")(args.id, *_parent(args), **attrs))
    obj = _settle(args, proxy, obj) or obj
    output.record(obj, as_json=args.json)
    return 0


def _delete(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    proxy = _proxy(args)
    extra = {"cascade": True} if getattr(args, "cascade", False) else {}
    getattr(proxy, f"delete_{kind.sdk}")(args.id, *_parent(args), ignore_missing=False,
                                         **extra)
    _settle(args, proxy, {"id": args.id}, deleting=True)
    return 0


# -- extras --------------------------------------------------------------------------------

def _lb_status(args: argparse.Namespace) -> int:
    conn = endpoint.connect(args)
    body = _http_get(conn, f"/lbaas/loadbalancers/{args.id}/status")
    if args.json:
        output.emit_json(body)
    else:
        output.status_tree(body["statuses"])
    return 0


_STATS = ("active_connections", "bytes_in", "bytes_out", "request_errors",
          "total_connections")


def _stats(args: argparse.Namespace) -> int:
    proxy = _proxy(args)
    getter = (proxy.get_load_balancer_statistics if args.kind.command == "lb"
              else proxy.get_listener_statistics)
    stats = _dict(getter(args.id))
    output.record({k: stats.get(k) for k in _STATS}, as_json=args.json)
    return 0


def _lb_failover(args: argparse.Namespace) -> int:
    proxy = _proxy(args)
    proxy.failover_load_balancer(args.id)
    obj = _settle(args, proxy, {"id": args.id})
    if args.wait and obj is not None:
        output.record(obj, as_json=args.json)
    return 0


_AMPHORA_COLUMNS = ("id", "loadbalancer_id", "status", "role", "lb_network_ip", "ha_ip",
                    "cached_zone")


def _amphora(args: argparse.Namespace) -> int:
    conn = endpoint.connect(args)
    proxy = conn.load_balancer
    if args.action == "list":
        filters = pairs(args.filters)
        output.table(_rows(proxy.amphorae(**filters)), _AMPHORA_COLUMNS, as_json=args.json)
    elif args.action == "show":
        output.record(_dict(proxy.get_amphora(args.id)), as_json=args.json)
    elif args.action == "failover":
        proxy.failover_amphora(args.id)
    elif args.action == "configure":
        proxy.configure_amphora(args.id)
    else:
        rows = _http_get(conn, f"/octavia/amphorae/{args.id}/stats")["amphora_stats"]
        output.table(rows, ("listener_id", *_STATS), as_json=args.json)
    return 0


_QUOTA_COLUMNS = ("project_id", "loadbalancer", "listener", "pool", "member",
                  "healthmonitor", "l7policy", "l7rule")


def _quota_dict(obj: Any) -> dict[str, Any]:
    data = _dict(obj)
    return {k: v for k, v in data.items() if k in _QUOTA_COLUMNS}


def _quota(args: argparse.Namespace) -> int:
    conn = endpoint.connect(args)
    proxy = conn.load_balancer
    if args.action == "list":
        output.table([_quota_dict(q) for q in proxy.quotas()], _QUOTA_COLUMNS,
                     as_json=args.json)
    elif args.action == "defaults":
        output.record(_http_get(conn, "/lbaas/quotas/defaults")["quota"], as_json=args.json)
    elif args.action == "show":
        output.record(_quota_dict(proxy.get_quota(args.project)), as_json=args.json)
    elif args.action == "set":
        attrs = pairs(args.attrs)
        output.record(_quota_dict(proxy.update_quota(args.project, **attrs)),
                      as_json=args.json)
    else:
        proxy.delete_quota(args.project, ignore_missing=False)
    return 0


def _provider(args: argparse.Namespace) -> int:
    conn = endpoint.connect(args)
    if args.action == "list":
        output.table(_rows(conn.load_balancer.providers()), ("name", "description"),
                     as_json=args.json)
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
    parent = [("parent", f"the {kind.parent.replace('_', '')}'s id")] if kind.parent else []
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
