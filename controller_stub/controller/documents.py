"""State-store rows → the Octavia-style document the renderer reads.

Objects being deleted (PENDING_DELETE) are left out, so the config pushed by a
delete flow is the one without them. ``options`` columns are passed through
unchanged: they hold the model's less common fields, validated by the
renderer's model when the request was accepted.
"""

from __future__ import annotations

from typing import Any

from controller_stub.controller import models
from controller_stub.controller.constants import PENDING_DELETE


def _live(rows: list[Any]) -> list[Any]:
    return [r for r in rows if r.provisioning_status != PENDING_DELETE]


def member_doc(m: models.Member) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": m.id, "address": m.address, "protocol_port": m.protocol_port,
                           "weight": m.weight, "backup": m.backup,
                           "admin_state_up": m.admin_state_up}
    if m.monitor_address:
        doc["monitor_address"] = m.monitor_address
    if m.monitor_port:
        doc["monitor_port"] = m.monitor_port
    return doc


def healthmonitor_doc(hm: models.HealthMonitor) -> dict[str, Any]:
    return {"id": hm.id, "type": hm.type, "delay": hm.delay, "timeout": hm.timeout,
            "max_retries": hm.max_retries, "max_retries_down": hm.max_retries_down,
            "admin_state_up": hm.admin_state_up, **hm.options}


def pool_doc(p: models.Pool) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": p.id, "protocol": p.protocol, "lb_algorithm": p.lb_algorithm,
                           "admin_state_up": p.admin_state_up, **p.options,
                           "members": [member_doc(m) for m in _live(p.members)]}
    if p.healthmonitor is not None and p.healthmonitor.provisioning_status != PENDING_DELETE:
        doc["healthmonitor"] = healthmonitor_doc(p.healthmonitor)
    return doc


def l7rule_doc(r: models.L7Rule) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": r.id, "type": r.type, "compare_type": r.compare_type,
                           "value": r.value, "invert": r.invert,
                           "admin_state_up": r.admin_state_up}
    if r.key is not None:
        doc["key"] = r.key
    return doc


def l7policy_doc(p: models.L7Policy) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": p.id, "action": p.action, "position": p.position,
                           "admin_state_up": p.admin_state_up, **p.options,
                           "rules": [l7rule_doc(r) for r in _live(p.rules)]}
    if p.redirect_pool_id:
        doc["redirect_pool_id"] = p.redirect_pool_id
    return doc


def listener_doc(li: models.Listener, live_pools: set[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": li.id, "protocol": li.protocol,
                           "protocol_port": li.protocol_port,
                           "connection_limit": li.connection_limit,
                           "admin_state_up": li.admin_state_up, **li.options,
                           "l7policies": [l7policy_doc(p) for p in _live(li.l7policies)]}
    if li.default_pool_id and li.default_pool_id in live_pools:
        doc["default_pool_id"] = li.default_pool_id
    return doc


def lb_doc(lb: models.LoadBalancer, amphorae: list[dict[str, Any]] | None = None,
           additional_vips: list[str] | None = None) -> dict[str, Any]:
    """The LB as the renderer reads it; ``amphorae`` overrides the rows (validation)."""
    pools = _live(lb.pools)
    live_pools = {p.id for p in pools}
    if amphorae is None:
        amphorae = [{"id": a.id, "role": a.role, "vrrp_ip": a.vrrp_ip,
                     "vrrp_priority": a.vrrp_priority}
                    for a in lb.amphorae if a.status != "DELETED"]
        amphorae = [{k: v for k, v in a.items() if v is not None} for a in amphorae]
    return {"id": lb.id, "vip_address": lb.vip_address or "192.0.2.1",
            "additional_vips": [{"ip_address": v} for v in (additional_vips or [])],
            "topology": lb.topology, "amphorae": amphorae,
            "listeners": [listener_doc(li, live_pools) for li in _live(lb.listeners)],
            "pools": [pool_doc(p) for p in pools]}


def backend_name(pool_id: str, listener_id: str) -> str:
    """The renderer's backend name (haproxy_templates.render.backend_name)."""
    from haproxy_templates.render import backend_name as name

    return name(pool_id, listener_id)
