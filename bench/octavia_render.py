"""Run inside ``.venv-octavia``: render an LB with Octavia's own HAProxy templater.

Takes one JSON argument: ``{"lb": <LB document, Octavia API field names>,
"amphora_id", "base_path", "cert_dir", "log_target", "amp_details":
<the amphora's /1.0/details>, "haproxy_version": "2.6.12"}`` and prints the
config that Octavia's ``combined_listeners`` ``JinjaTemplater`` renders for it,
with the listener defaults Octavia's API stores for a new listener (ciphers,
TLS versions, ALPN) and the crt-list name its driver uploads
(``{cert_dir}/{lb_id}/{listener_id}.pem``).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    args = json.loads(sys.argv[1])
    from octavia.common import config as octavia_config  # registers the options
    from octavia.common import constants
    from octavia.common import data_models as dm
    from octavia.common.jinja.haproxy.combined_listeners import jinja_cfg

    conf = octavia_config.cfg.CONF
    conf(args=[], project="octavia", default_config_files=[], default_config_dirs=[])
    for option, key in (("base_path", "base_path"), ("base_cert_dir", "cert_dir")):
        conf.set_override(option, args[key], group="haproxy_amphora")
    api = conf.api_settings
    doc: dict[str, Any] = args["lb"]
    project = "bench-project"

    def monitor(hm: dict[str, Any] | None) -> dm.HealthMonitor | None:
        if hm is None:
            return None
        return dm.HealthMonitor(
            id=hm["id"], type=hm["type"], delay=hm["delay"], timeout=hm["timeout"],
            rise_threshold=hm["max_retries"], fall_threshold=hm.get("max_retries_down", 3),
            http_method=hm.get("http_method", "GET"), url_path=hm.get("url_path", "/"),
            expected_codes=hm.get("expected_codes", "200"), enabled=True,
            provisioning_status=constants.ACTIVE, http_version=hm.get("http_version"),
            domain_name=hm.get("domain_name"))

    pools = {p["id"]: dm.Pool(
        id=p["id"], project_id=project, protocol=p["protocol"], lb_algorithm=p["lb_algorithm"],
        enabled=True, provisioning_status=constants.ACTIVE, operating_status=constants.ONLINE,
        health_monitor=monitor(p.get("healthmonitor")), tls_enabled=False,
        members=[dm.Member(id=m["id"], project_id=project, ip_address=m["address"],
                           protocol_port=m["protocol_port"], weight=m.get("weight", 1),
                           backup=False, enabled=True, provisioning_status=constants.ACTIVE,
                           operating_status=constants.ONLINE)
                 for m in p["members"]]) for p in doc["pools"]}
    amphora = dm.Amphora(id=args["amphora_id"], status=constants.AMPHORA_ALLOCATED,
                         role=constants.ROLE_STANDALONE)
    lb = dm.LoadBalancer(id=doc["id"], project_id=project, enabled=True,
                         topology=constants.TOPOLOGY_SINGLE,
                         vip=dm.Vip(ip_address=doc["vip_address"]), amphorae=[amphora],
                         additional_vips=[])
    listeners = []
    for li in doc["listeners"]:
        tls = li["protocol"] == constants.PROTOCOL_TERMINATED_HTTPS
        pool = pools[li["default_pool_id"]]
        listeners.append(dm.Listener(
            id=li["id"], project_id=project, protocol=li["protocol"],
            protocol_port=li["protocol_port"], connection_limit=li.get("connection_limit", -1),
            enabled=True, provisioning_status=constants.ACTIVE, default_pool=pool,
            default_pool_id=pool.id, pools=[pool], l7policies=[], load_balancer=lb,
            peer_port=1025, insert_headers=li.get("insert_headers", {}),
            tls_certificate_id=li.get("default_tls_container_ref") if tls else None,
            tls_ciphers=api.default_listener_ciphers if tls else None,
            tls_versions=api.default_listener_tls_versions if tls else None,
            alpn_protocols=li.get("alpn_protocols", api.default_listener_alpn_protocols)
            if tls else None))
    lb.listeners = listeners
    templater = jinja_cfg.JinjaTemplater(
        base_amp_path=args["base_path"], base_crt_dir=args["cert_dir"],
        log_http=args["log_target"], log_server=args["log_target"])
    print(templater.build_config(amphora, listeners, {}, args["haproxy_version"].split("."),
                                 args["amp_details"]), end="")


if __name__ == "__main__":
    main()
