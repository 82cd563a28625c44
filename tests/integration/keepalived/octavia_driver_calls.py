"""Run inside ``.venv-octavia``: Octavia's own controller code against our agent.

Renders the keepalived config with Octavia's ``KeepalivedJinjaTemplater`` for
the MASTER amphora of an ACTIVE_STANDBY pair and drives the agent with
Octavia's ``AmphoraAPIClient1_0`` (its VRRP and UDP listener calls). Takes
one JSON argument (see test_ka_octavia.py), prints one JSON object.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    args = json.loads(sys.argv[1])
    from octavia.common import (
        config,  # noqa: F401  (registers the options)
        constants,
    )
    from octavia.common import data_models as dm
    from oslo_config import cfg

    conf = cfg.CONF
    conf([], project="octavia", default_config_files=[], default_config_dirs=[])
    for key, value in (("base_path", args["base_path"]), ("client_cert", args["client_cert"]),
                       ("server_ca", args["server_ca"]), ("bind_port", args["port"]),
                       ("connection_max_retries", 3), ("connection_retry_interval", 1)):
        conf.set_override(key, value, group="haproxy_amphora")

    from octavia.amphorae.drivers.haproxy import exceptions as driver_exceptions
    from octavia.amphorae.drivers.haproxy.rest_api_driver import AmphoraAPIClient1_0
    from octavia.amphorae.drivers.keepalived.jinja.jinja_cfg import KeepalivedJinjaTemplater

    def amphora(amp_id: str, vrrp_ip: str, role: str, priority: int) -> dm.Amphora:
        amp = dm.Amphora(id=amp_id, status=constants.AMPHORA_ALLOCATED, vrrp_ip=vrrp_ip,
                         vrrp_interface="eth1", vrrp_id=1, vrrp_priority=priority, role=role,
                         lb_network_ip=args["host"])
        amp.api_version = "1.0"  # what the driver's version discovery sets
        return amp

    # "this" amphora (the one the calls go to) and its peer
    is_master = args.get("role", "MASTER") == "MASTER"
    master = amphora(args["amphora_id"], args["vrrp_ip"],
                     constants.ROLE_MASTER if is_master else constants.ROLE_BACKUP,
                     100 if is_master else 90)
    backup = amphora(args["peer_id"], args["peer_ip"],
                     constants.ROLE_BACKUP if is_master else constants.ROLE_MASTER,
                     90 if is_master else 100)
    lb = dm.LoadBalancer(
        id=args["lb_id"], topology=constants.TOPOLOGY_ACTIVE_STANDBY,
        vip=dm.Vip(ip_address=args["vip"]), amphorae=[master, backup],
        vrrp_group=dm.VRRPGroup(vrrp_group_name=args["lb_id"].replace("-", ""),
                                vrrp_auth_type=constants.VRRP_AUTH_DEFAULT,
                                vrrp_auth_pass="0123abcd", advert_int=1))
    net_config = {"additional_vip_data": [],
                  constants.VIP_SUBNET: {"cidr": args["cidr"], "gateway_ip": args["gateway"],
                                         "host_routes": []}}
    config_text = KeepalivedJinjaTemplater().build_keepalived_config(lb, master, net_config)

    client = AmphoraAPIClient1_0()
    out: dict[str, object] = {"config": config_text}
    for step in args["steps"]:
        try:
            out[step] = run(client, step, master, config_text, args)
        except driver_exceptions.APIException as exc:  # the driver's 4xx/5xx answers
            out[step] = type(exc).__name__
    print(json.dumps(out))


def run(client, step, master, config_text, args):  # type: ignore[no-untyped-def]
    """One driver call; its HTTP status, or what it returned."""
    if step == "upload_vrrp":
        return client.upload_vrrp_config(master, config_text).status_code
    if step in ("start_vrrp", "reload_vrrp", "stop_vrrp"):
        return getattr(client, step)(master).status_code
    if step == "upload_udp":
        return client.upload_udp_config(master, args["listener_id"],
                                        args["udp_config"]).status_code
    if step == "start_udp":
        return client.start_listener(master, args["listener_id"]).status_code
    if step == "listeners":
        return client.get_all_listeners(master)
    if step == "delete_udp":
        return client.delete_listener(master, args["listener_id"]).status_code
    raise SystemExit(f"unknown step {step}")


if __name__ == "__main__":
    main()
