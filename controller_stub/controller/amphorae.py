"""The operator's view of amphorae (Octavia's ``/v2/octavia/amphorae``): rows and counters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller_stub.controller import models
from controller_stub.controller.errors import NotFound


def amphora_dict(a: models.Amphora) -> dict[str, Any]:
    """Octavia's AmphoraResponse fields; what the local fabric has no use for is null."""
    return {"id": a.id, "loadbalancer_id": a.load_balancer_id, "compute_id": a.compute_id,
            "lb_network_ip": a.lb_network_ip, "vrrp_ip": a.vrrp_ip, "ha_ip": a.ha_ip,
            "vrrp_port_id": a.vrrp_port_id, "ha_port_id": None, "cert_expiration": None,
            "cert_busy": False, "role": a.role, "status": a.status,
            "vrrp_interface": None, "vrrp_id": 1 if a.vrrp_priority is not None else None,
            "vrrp_priority": a.vrrp_priority, "cached_zone": a.cached_zone,
            "created_at": a.created_at.isoformat() if a.created_at else None,
            "updated_at": a.updated_at.isoformat() if a.updated_at else None,
            "image_id": a.image_id, "compute_flavor": a.compute_flavor}


def list_amphorae(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    with sessions() as session:
        return [amphora_dict(a) for a in session.scalars(
            select(models.Amphora).order_by(models.Amphora.created_at))]


def get_amphora(sessions: sessionmaker[Session], amphora_id: str) -> dict[str, Any]:
    with sessions() as session:
        row = session.get(models.Amphora, amphora_id)
        if row is None:
            raise NotFound(f"Amphora {amphora_id} not found.")
        return amphora_dict(row)


def amphora_stats(sessions: sessionmaker[Session], amphora_id: str) -> list[dict[str, Any]]:
    """Per-listener counters this amphora reported in its heartbeats."""
    with sessions() as session:
        amphora = session.get(models.Amphora, amphora_id)
        if amphora is None:
            raise NotFound(f"Amphora {amphora_id} not found.")
        rows = list(session.scalars(select(models.ListenerStatistics).where(
            models.ListenerStatistics.amphora_id == amphora_id)))
        if not rows:  # as Octavia: no heartbeat counters yet is a 404
            raise NotFound(f"Amphora stats for {amphora_id} not found.")
        return [{"id": amphora_id, "listener_id": r.listener_id,
                 "loadbalancer_id": amphora.load_balancer_id,
                 "active_connections": r.active_connections, "bytes_in": r.bytes_in,
                 "bytes_out": r.bytes_out, "request_errors": r.request_errors,
                 "total_connections": r.total_connections} for r in rows]
