"""The controller's Python API: what tests, the demo and the REST layer call.

Every change is one transaction: check the LB is not PENDING_* (else
:class:`Conflict`, Octavia's 409), apply the change to the rows with the
objects in PENDING_CREATE/UPDATE/DELETE and the LB in PENDING_UPDATE,
validate the whole resulting LB against the LB's image (the renderer with
the image's versions: a feature the image lacks raises :class:`Unsupported`
naming the option and the version, and nothing is stored), and insert the
flow that will carry it out. Answers are plain dicts with Octavia's field
names.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from controller_stub.controller import flavors, models, quotas
from controller_stub.controller.constants import (
    ACTIVE_STANDBY,
    ERROR,
    FLOW_PENDING,
    NO_MONITOR,
    OFFLINE,
    PENDING_CREATE,
    PENDING_DELETE,
    PENDING_STATUSES,
    PENDING_UPDATE,
    ROLE_BACKUP,
    ROLE_MASTER,
)
from controller_stub.controller.documents import lb_doc
from controller_stub.controller.errors import Conflict, InvalidRequest, NotFound, Unsupported
from controller_stub.controller.imaging import ImageSource, target_of
from controller_stub.controller.positions import renumber
from haproxy_templates import render
from haproxy_templates.errors import CapabilityError, ValidationError

_COMMON = ("id", "name", "description", "provisioning_status", "operating_status",
           "admin_state_up", "project_id", "created_at", "updated_at", "tags")
_PLACEHOLDER_AMPHORAE = [
    {"id": "00000000-0000-4000-8000-000000000001", "role": "MASTER", "vrrp_ip": "192.0.2.2"},
    {"id": "00000000-0000-4000-8000-000000000002", "role": "BACKUP", "vrrp_ip": "192.0.2.3"}]


def _as_dict(obj: Any, *fields: str) -> dict[str, Any]:
    out = {f: getattr(obj, f) for f in (*_COMMON, *fields) if hasattr(obj, f)}
    for key in ("created_at", "updated_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    out["tags"] = list(out.get("tags") or [])
    if getattr(obj, "status_reason", None):
        out["status_reason"] = obj.status_reason
    out.update(getattr(obj, "options", None) or {})
    return out


def lb_dict(lb: models.LoadBalancer) -> dict[str, Any]:
    out = _as_dict(lb, "vip_address", "vip_network_id", "vip_subnet_id", "vip_port_id",
                   "flavor_id", "availability_zone", "provider", "topology")
    out["listeners"] = [{"id": li.id} for li in lb.listeners]
    out["pools"] = [{"id": p.id} for p in lb.pools]
    return out


def listener_dict(li: models.Listener) -> dict[str, Any]:
    out = _as_dict(li, "protocol", "protocol_port", "connection_limit", "default_pool_id")
    out["project_id"] = li.load_balancer.project_id
    out["loadbalancers"] = [{"id": li.load_balancer_id}]
    out["l7policies"] = [{"id": p.id} for p in li.l7policies]
    return out


def pool_dict(p: models.Pool) -> dict[str, Any]:
    out = _as_dict(p, "protocol", "lb_algorithm")
    out["project_id"] = p.load_balancer.project_id
    out["listeners"] = [{"id": li.id} for li in p.load_balancer.listeners
                        if li.default_pool_id == p.id]
    out["loadbalancers"] = [{"id": p.load_balancer_id}]
    out["members"] = [{"id": m.id} for m in p.members]
    out["healthmonitor_id"] = p.healthmonitor.id if p.healthmonitor else None
    return out


def member_dict(m: models.Member) -> dict[str, Any]:
    out = _as_dict(m, "address", "protocol_port", "weight", "backup", "subnet_id",
                   "monitor_address", "monitor_port", "pool_id")
    out["project_id"] = m.pool.load_balancer.project_id
    return out


def healthmonitor_dict(hm: models.HealthMonitor) -> dict[str, Any]:
    out = _as_dict(hm, "type", "delay", "timeout", "max_retries", "max_retries_down")
    out["project_id"] = hm.pool.load_balancer.project_id
    out["pools"] = [{"id": hm.pool_id}]
    return out


def l7policy_dict(p: models.L7Policy) -> dict[str, Any]:
    out = _as_dict(p, "action", "position", "redirect_pool_id", "listener_id")
    out["project_id"] = p.listener.load_balancer.project_id
    out["rules"] = [{"id": r.id} for r in p.rules]
    return out


def l7rule_dict(r: models.L7Rule) -> dict[str, Any]:
    out = _as_dict(r, "type", "compare_type", "key", "value", "invert", "l7policy_id")
    out["project_id"] = r.l7policy.listener.load_balancer.project_id
    return out


# what ``Controller.list_objects`` and the REST layer's listings know by name
LISTABLE: dict[str, tuple[type[Any], Callable[[Any], dict[str, Any]]]] = {
    "loadbalancer": (models.LoadBalancer, lb_dict),
    "listener": (models.Listener, listener_dict),
    "pool": (models.Pool, pool_dict),
    "member": (models.Member, member_dict),
    "healthmonitor": (models.HealthMonitor, healthmonitor_dict),
    "l7policy": (models.L7Policy, l7policy_dict),
    "l7rule": (models.L7Rule, l7rule_dict),
}
_STAT_FIELDS = ("bytes_in", "bytes_out", "active_connections", "total_connections",
                "request_errors")


_LISTENER_OPTIONS = ("timeout_client_data", "timeout_member_connect", "timeout_member_data",
                     "timeout_tcp_inspect", "insert_headers", "allowed_cidrs",
                     "default_tls_container_ref", "sni_container_refs",
                     "client_ca_tls_container_ref", "client_authentication",
                     "client_crl_container_ref", "tls_ciphers", "tls_versions",
                     "alpn_protocols", "hsts_max_age", "hsts_include_subdomains",
                     "hsts_preload")
_POOL_OPTIONS = ("session_persistence", "tls_enabled", "tls_container_ref",
                 "ca_tls_container_ref", "crl_container_ref", "tls_ciphers", "tls_versions",
                 "alpn_protocols")
_HM_OPTIONS = ("http_method", "url_path", "expected_codes", "domain_name", "http_version")
_L7POLICY_OPTIONS = ("redirect_url", "redirect_prefix", "redirect_http_code")


def _split(kwargs: dict[str, Any], allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in allowed}
    if kwargs:
        raise InvalidRequest(f"{what}: unknown attribute(s) {', '.join(sorted(kwargs))}")
    return options


class Controller:
    """Declare and change load balancers; the workers build them."""

    def __init__(self, sessions: sessionmaker[Session], images: ImageSource, *,
                 on_change: Callable[[], None] | None = None,
                 quota_defaults: dict[str, int] | None = None) -> None:
        self.sessions, self.images = sessions, images
        self.on_change = on_change or (lambda: None)
        self.quota_defaults = {**quotas.DEFAULTS, **(quota_defaults or {})}

    # -- the change protocol ---------------------------------------------------------

    def _lock_lb(self, session: Session, lb_id: str) -> models.LoadBalancer:
        lb = session.scalars(select(models.LoadBalancer).where(
            models.LoadBalancer.id == lb_id).with_for_update()).first()
        if lb is None:
            raise NotFound(f"load balancer {lb_id} not found")
        if lb.provisioning_status in PENDING_STATUSES:
            raise Conflict(f"load balancer {lb_id} is immutable while in "
                           f"{lb.provisioning_status}")
        return lb

    def _validate(self, session: Session, lb: models.LoadBalancer) -> None:
        image = session.get(models.Image, lb.image_id) if lb.image_id else None
        if image is None:
            raise InvalidRequest(f"load balancer {lb.id} has no image record")
        amphorae = _PLACEHOLDER_AMPHORAE if lb.topology == ACTIVE_STANDBY else [
            {"id": _PLACEHOLDER_AMPHORAE[0]["id"], "role": "STANDALONE"}]
        session.flush()
        session.expire_all()
        lb = session.get(models.LoadBalancer, lb.id)  # type: ignore[assignment]
        try:
            render(lb_doc(lb, amphorae=amphorae), amphora_id=amphorae[0]["id"],
                   target=target_of(image.properties))
        except CapabilityError as exc:
            raise Unsupported(f"image {image.id} ({image.name or image.tag}) cannot serve "
                              f"this request: {exc}") from None
        except ValidationError as exc:
            raise InvalidRequest(str(exc)) from None

    def _change(self, lb_id: str, kind: str, mutate: Callable[[Session, models.LoadBalancer],
                                                             Any]) -> Any:
        with self.sessions.begin() as session:
            lb = self._lock_lb(session, lb_id)
            if lb.provisioning_status == ERROR and not lb.amphorae:
                # its create failed and the compute it made was removed: nothing to change
                raise Conflict(f"load balancer {lb_id} has no amphorae (its create failed: "
                               f"{lb.status_reason}); delete it and create it again")
            enforcer = quotas.Enforcer(session, lb.project_id, self.quota_defaults)
            result = mutate(session, lb)
            self._validate(session, lb)
            enforcer.check()
            lb = session.get(models.LoadBalancer, lb_id)
            assert lb is not None
            if lb.provisioning_status not in PENDING_STATUSES:
                lb.provisioning_status = PENDING_UPDATE
            session.add(models.Flow(kind=kind, load_balancer_id=lb_id, state=FLOW_PENDING))
            session.flush()
            answer = result() if callable(result) else result
        self.on_change()
        return answer

    def _get(self, session: Session, model: type[Any], object_id: str) -> Any:
        obj = session.get(model, object_id)
        if obj is None:
            raise NotFound(f"{model.__tablename__} {object_id} not found")
        return obj

    # -- flavors and zones -------------------------------------------------------------

    def create_flavor_profile(self, name: str, flavor_data: dict[str, Any],
                              provider_name: str = "amphora") -> dict[str, Any]:
        data = flavors.validate_flavor_data(flavor_data)
        with self.sessions.begin() as session:
            row = models.FlavorProfile(name=name, provider_name=provider_name,
                                       flavor_data=data)
            session.add(row)
            session.flush()
            return {"id": row.id, "name": name, "provider_name": provider_name,
                    "flavor_data": data}

    def create_flavor(self, name: str, flavor_profile_id: str, *, description: str = "",
                      enabled: bool = True) -> dict[str, Any]:
        with self.sessions.begin() as session:
            self._get(session, models.FlavorProfile, flavor_profile_id)
            row = models.Flavor(name=name, flavor_profile_id=flavor_profile_id,
                                description=description, enabled=enabled)
            session.add(row)
            session.flush()
            return {"id": row.id, "name": name, "flavor_profile_id": flavor_profile_id,
                    "description": description, "enabled": enabled}

    def create_availability_zone_profile(self, name: str, availability_zone_data: dict[str, Any],
                                         provider_name: str = "amphora") -> dict[str, Any]:
        data = flavors.validate_zone_data(availability_zone_data)
        with self.sessions.begin() as session:
            row = models.AvailabilityZoneProfile(name=name, provider_name=provider_name,
                                                 availability_zone_data=data)
            session.add(row)
            session.flush()
            return {"id": row.id, "name": name, "provider_name": provider_name,
                    "availability_zone_data": data}

    def create_availability_zone(self, name: str, availability_zone_profile_id: str, *,
                                 description: str = "", enabled: bool = True) -> dict[str, Any]:
        with self.sessions.begin() as session:
            self._get(session, models.AvailabilityZoneProfile, availability_zone_profile_id)
            session.add(models.AvailabilityZone(
                name=name, availability_zone_profile_id=availability_zone_profile_id,
                description=description, enabled=enabled))
            return {"name": name, "availability_zone_profile_id": availability_zone_profile_id,
                    "description": description, "enabled": enabled}

    # -- load balancers ----------------------------------------------------------------

    def create_load_balancer(self, *, vip_network_id: str = "vip",
                             vip_subnet_id: str | None = None, vip_address: str | None = None,
                             name: str | None = None,
                             description: str | None = None, flavor_id: str | None = None,
                             availability_zone: str | None = None, project_id: str | None = None,
                             admin_state_up: bool = True, tags: list[str] | None = None,
                             listeners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Declare an LB; ``listeners`` (each with an optional ``default_pool`` that may
        hold ``members`` and a ``healthmonitor``) makes it fully populated, as in Octavia."""
        with self.sessions.begin() as session:
            data: dict[str, Any] = {}
            if flavor_id is not None:
                flavor = self._get(session, models.Flavor, flavor_id)
                if not flavor.enabled:
                    raise InvalidRequest(f"flavor {flavor_id} is disabled")
                data = dict(flavor.flavor_profile.flavor_data)
            zone_data: dict[str, Any] = {}
            if availability_zone is not None:
                zone_data = self._zone(session, availability_zone, vip_network_id)
                if "management_network" in zone_data:
                    data.setdefault("amp_boot_network", zone_data["management_network"])
            resolved = flavors.resolve(data)
            role_zones = self._role_zones(session, resolved, vip_network_id)
        image_id, properties = self.images.select(resolved["amp_image_tag"])
        with self.sessions.begin() as session:
            if session.get(models.Image, image_id) is None:
                try:
                    with session.begin_nested():
                        session.add(models.Image(id=image_id, tag=resolved["amp_image_tag"],
                                                 name=image_id, properties=properties))
                except IntegrityError:  # another create cached it at the same moment
                    pass
            enforcer = quotas.Enforcer(session, project_id, self.quota_defaults)
            lb = models.LoadBalancer(
                name=name, description=description, project_id=project_id,
                admin_state_up=admin_state_up, tags=list(tags or []),
                topology=resolved["loadbalancer_topology"],
                vip_network_id=vip_network_id, vip_subnet_id=vip_subnet_id,
                vip_address=vip_address, flavor_id=flavor_id,
                availability_zone=availability_zone, image_id=image_id,
                flavor_data={**resolved, "zone": zone_data,
                             **({"role_zones": role_zones} if role_zones else {})},
                provisioning_status=PENDING_CREATE, operating_status=OFFLINE)
            session.add(lb)
            session.flush()
            for spec in listeners or []:
                spec = dict(spec)
                pool_spec = spec.pop("default_pool", None)
                listener = self._new_listener(lb, spec)
                session.add(listener)
                if pool_spec is not None:
                    pool = self._new_pool(session, lb, dict(pool_spec))
                    session.flush()
                    listener.default_pool_id = pool.id
            self._validate(session, lb)
            enforcer.check()
            session.add(models.Flow(kind="lb_create", load_balancer_id=lb.id,
                                    state=FLOW_PENDING,
                                    params={"vip_address": vip_address} if vip_address
                                    else {}))
            session.flush()
            answer = lb_dict(session.get(models.LoadBalancer, lb.id))  # type: ignore[arg-type]
        self.on_change()
        return answer

    def _zone(self, session: Session, name: str, vip_network_id: str) -> dict[str, Any]:
        """An enabled availability zone's profile data, the VIP network checked against it."""
        zone = self._get(session, models.AvailabilityZone, name)
        if not zone.enabled:
            raise InvalidRequest(f"availability zone {name} is disabled")
        zone_data = dict(zone.availability_zone_profile.availability_zone_data)
        valid = zone_data.get("valid_vip_networks")
        if valid and vip_network_id not in valid:
            raise InvalidRequest(f"vip_network_id {vip_network_id} is not valid in zone {name}")
        return zone_data

    def _role_zones(self, session: Session, resolved: dict[str, Any],
                    vip_network_id: str) -> dict[str, dict[str, Any]]:
        """The flavor's ``availability_zones`` (anti-affinity): MASTER in the first zone,
        BACKUP in the second, and the two must be different compute zones."""
        names = resolved.get("availability_zones")
        if not names:
            return {}
        if resolved["loadbalancer_topology"] != ACTIVE_STANDBY:
            raise InvalidRequest("flavor availability_zones: needs loadbalancer_topology "
                                 "ACTIVE_STANDBY")
        zones = {role: {**self._zone(session, name, vip_network_id), "name": name}
                 for role, name in zip((ROLE_MASTER, ROLE_BACKUP), names, strict=True)}
        computes = [zone.get("compute_zone", zone["name"]) for zone in zones.values()]
        if computes[0] == computes[1]:
            raise InvalidRequest(f"flavor availability_zones: {names[0]} and {names[1]} are "
                                 f"the same compute zone {computes[0]}")
        return zones

    def update_load_balancer(self, lb_id: str, **changes: Any) -> dict[str, Any]:
        _split(dict(changes), ("name", "description", "admin_state_up", "tags"), "loadbalancer")

        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            for key, value in changes.items():
                setattr(lb, key, value)
            return lambda: lb_dict(lb)
        return self._change(lb_id, "lb_update", mutate)

    # -- failover ---------------------------------------------------------------------

    def failover_amphora(self, amphora_id: str) -> dict[str, Any]:
        """Replace one amphora (operator): a ``failover`` flow; the LB goes
        PENDING_UPDATE until the replacement serves (Conflict while it is PENDING)."""
        with self.sessions.begin() as session:
            amphora = session.get(models.Amphora, amphora_id)
            if amphora is None or amphora.load_balancer_id is None:
                raise NotFound(f"amphora {amphora_id} not found")
            lb = self._lock_lb(session, amphora.load_balancer_id)
            self._start_failover(session, lb, amphora_id)
            answer = lb_dict(lb)
        self.on_change()
        return answer

    def failover_load_balancer(self, lb_id: str) -> dict[str, Any]:
        """Replace the LB's amphora that most needs it (operator): one left over by a
        failed failover, else the one whose heartbeat is oldest, else the first."""
        with self.sessions() as session:
            lb = self._get(session, models.LoadBalancer, lb_id)
            ids = [a.id for a in lb.amphorae]
            if not ids:
                raise Conflict(f"load balancer {lb_id} has no amphorae")
            replaced = [a.id for a in lb.amphorae if a.status == "PENDING_DELETE"]
            seen = {h.amphora_id: h.last_update for h in session.scalars(
                select(models.AmphoraHealth).where(models.AmphoraHealth.amphora_id.in_(ids)))}
        never = [i for i in ids if i not in seen]
        target = (replaced or never or sorted(ids, key=lambda i: seen[i]))[0]
        return self.failover_amphora(target)

    def start_failover(self, lb_id: str, amphora_id: str) -> bool:
        """The health manager's failover: only for an ACTIVE LB (one in ERROR, e.g.
        after a failed failover, waits for the operator); False when not started."""
        with self.sessions.begin() as session:
            lb = session.scalars(select(models.LoadBalancer).where(
                models.LoadBalancer.id == lb_id).with_for_update()).first()
            if lb is None or lb.provisioning_status != "ACTIVE":
                return False
            self._start_failover(session, lb, amphora_id)
        self.on_change()
        return True

    @staticmethod
    def _start_failover(session: Session, lb: models.LoadBalancer, amphora_id: str) -> None:
        lb.provisioning_status = PENDING_UPDATE
        session.add(models.Flow(kind="failover", load_balancer_id=lb.id, state=FLOW_PENDING,
                                params={"amphora_id": amphora_id}))

    def delete_load_balancer(self, lb_id: str, *, cascade: bool = False) -> None:
        with self.sessions.begin() as session:
            lb = self._lock_lb(session, lb_id)
            if (lb.listeners or lb.pools) and not cascade:
                raise InvalidRequest(f"load balancer {lb_id} has listeners or pools; "
                                     "delete them or use cascade")
            lb.provisioning_status = PENDING_DELETE
            for obj in lb.children():
                obj.provisioning_status = PENDING_DELETE
            session.add(models.Flow(kind="lb_delete", load_balancer_id=lb_id,
                                    state=FLOW_PENDING))
        self.on_change()

    def get_load_balancer(self, lb_id: str) -> dict[str, Any]:
        with self.sessions() as session:
            return lb_dict(self._get(session, models.LoadBalancer, lb_id))

    def list_load_balancers(self) -> list[dict[str, Any]]:
        return self.list_objects("loadbalancer")

    def list_objects(self, kind: str, **where: Any) -> list[dict[str, Any]]:
        """Every object of a kind in :data:`LISTABLE` (columns in ``where`` equal)."""
        model, as_dict = LISTABLE[kind]
        # the relationships the answers read, in one query each rather than one per row
        query = select(model).filter_by(**where).options(selectinload("*"))
        with self.sessions() as session:
            return [as_dict(row) for row in session.scalars(query)]

    def project_of(self, kind: str, object_id: str) -> str | None:
        """The project owning an object: its load balancer's (NotFound if absent)."""
        return self.get_object(kind, object_id)["project_id"]

    def get_object(self, kind: str, object_id: str) -> dict[str, Any]:
        model, as_dict = LISTABLE[kind]
        with self.sessions() as session:
            return as_dict(self._get(session, model, object_id))

    def listener_stats(self, listener_id: str) -> dict[str, int]:
        """Octavia's listener ``stats``: the counters summed over the amphorae."""
        with self.sessions() as session:
            self._get(session, models.Listener, listener_id)
            rows = session.scalars(select(models.ListenerStatistics).where(
                models.ListenerStatistics.listener_id == listener_id))
            return _sum_stats(rows)

    def load_balancer_stats(self, lb_id: str) -> dict[str, int]:
        """Octavia's load balancer ``stats``: its listeners' counters summed."""
        with self.sessions() as session:
            lb = self._get(session, models.LoadBalancer, lb_id)
            ids = [li.id for li in lb.listeners]
            rows = session.scalars(select(models.ListenerStatistics).where(
                models.ListenerStatistics.listener_id.in_(ids)))
            return _sum_stats(rows)

    def amphorae(self, lb_id: str) -> list[dict[str, Any]]:
        with self.sessions() as session:
            lb = self._get(session, models.LoadBalancer, lb_id)
            return [{"id": a.id, "role": a.role, "status": a.status,
                     "lb_network_ip": a.lb_network_ip, "vrrp_ip": a.vrrp_ip, "ha_ip": a.ha_ip,
                     "compute_id": a.compute_id, "image_id": a.image_id,
                     "availability_zone": a.cached_zone,
                     "compute_zone": a.compute_data.get("compute_zone"),
                     "compute_data": dict(a.compute_data)} for a in lb.amphorae]

    def status_tree(self, lb_id: str) -> dict[str, Any]:
        """Octavia's ``GET /v2/lbaas/loadbalancers/{id}/status`` body."""
        with self.sessions() as session:
            lb = self._get(session, models.LoadBalancer, lb_id)

            def st(obj: Any, **extra: Any) -> dict[str, Any]:
                return {"id": obj.id, "name": obj.name,
                        "provisioning_status": obj.provisioning_status,
                        "operating_status": obj.operating_status, **extra}
            pools = {p.id: p for p in lb.pools}
            listeners = []
            for li in lb.listeners:
                pool_rows = [pools[li.default_pool_id]] if li.default_pool_id in pools else []
                listeners.append(st(li, pools=[st(p, members=[
                    st(m, address=m.address, protocol_port=m.protocol_port)
                    for m in p.members], **({"health_monitor": st(p.healthmonitor,
                                                                   type=p.healthmonitor.type)}
                                            if p.healthmonitor else {}))
                    for p in pool_rows]))
            return {"statuses": {"loadbalancer": st(lb, listeners=listeners)}}

    def wait(self, lb_id: str, timeout: float = 60.0, interval: float = 0.05) -> dict[str, Any]:
        """Poll until the LB leaves PENDING_* (or is gone: NotFound); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            lb = self.get_load_balancer(lb_id)
            if lb["provisioning_status"] not in PENDING_STATUSES:
                return lb
            if time.monotonic() > deadline:
                raise TimeoutError(f"load balancer {lb_id} still {lb['provisioning_status']}")
            time.sleep(interval)

    def wait_deleted(self, lb_id: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                lb = self.get_load_balancer(lb_id)
            except NotFound:
                return
            if lb["provisioning_status"] not in PENDING_STATUSES:
                raise RuntimeError(f"delete of {lb_id} ended in {lb['provisioning_status']}: "
                                   f"{lb.get('status_reason')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"load balancer {lb_id} not deleted")
            time.sleep(0.05)

    # -- listeners -----------------------------------------------------------------------

    def _new_listener(self, lb: models.LoadBalancer, spec: dict[str, Any]) -> models.Listener:
        spec = dict(spec)
        try:
            protocol, port = spec.pop("protocol"), spec.pop("protocol_port")
        except KeyError as exc:
            raise InvalidRequest(f"listener: {exc.args[0]} is required") from None
        common = {k: spec.pop(k) for k in ("name", "description", "admin_state_up",
                                           "connection_limit", "default_pool_id", "tags", "id")
                  if k in spec}
        options = _split(spec, _LISTENER_OPTIONS, "listener")
        if any(li.protocol_port == port and li.provisioning_status != PENDING_DELETE
               for li in lb.listeners):
            raise Conflict(f"another listener on load balancer {lb.id} uses port {port}")
        listener = models.Listener(load_balancer=lb, protocol=protocol, protocol_port=port,
                                   provisioning_status=PENDING_CREATE,
                                   operating_status=OFFLINE, options=options, **common)
        return listener

    def create_listener(self, loadbalancer_id: str, **spec: Any) -> dict[str, Any]:
        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            if "default_pool_id" in spec:
                self._pool_of(session, lb, spec["default_pool_id"])
            listener = self._new_listener(lb, spec)
            session.add(listener)
            return lambda: listener_dict(listener)
        return self._change(loadbalancer_id, "lb_update", mutate)

    def _pool_of(self, session: Session, lb: models.LoadBalancer, pool_id: str) -> models.Pool:
        pool = self._get(session, models.Pool, pool_id)
        if pool.load_balancer_id != lb.id:
            raise InvalidRequest(f"pool {pool_id} belongs to another load balancer")
        return pool

    def update_listener(self, listener_id: str, **changes: Any) -> dict[str, Any]:
        lb_id = self._lb_of(models.Listener, listener_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            listener = self._get(session, models.Listener, listener_id)
            changes_ = dict(changes)
            for key in ("name", "description", "admin_state_up", "connection_limit",
                        "default_pool_id", "tags"):
                if key in changes_:
                    if key == "default_pool_id" and changes_[key] is not None:
                        self._pool_of(session, lb, changes_[key])
                    setattr(listener, key, changes_.pop(key))
            options = _split(changes_, _LISTENER_OPTIONS, "listener")
            listener.options = {**listener.options, **options}
            listener.provisioning_status = PENDING_UPDATE
            return lambda: listener_dict(listener)
        return self._change(lb_id, "lb_update", mutate)

    def delete_listener(self, listener_id: str) -> None:
        lb_id = self._lb_of(models.Listener, listener_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> None:
            listener = self._get(session, models.Listener, listener_id)
            listener.provisioning_status = PENDING_DELETE
            for policy in listener.l7policies:
                policy.provisioning_status = PENDING_DELETE
                for rule in policy.rules:
                    rule.provisioning_status = PENDING_DELETE
        self._change(lb_id, "lb_update", mutate)

    def get_listener(self, listener_id: str) -> dict[str, Any]:
        with self.sessions() as session:
            return listener_dict(self._get(session, models.Listener, listener_id))

    def _lb_of(self, model: type[Any], object_id: str) -> str:
        with self.sessions() as session:
            obj = self._get(session, model, object_id)
            if isinstance(obj, models.Listener | models.Pool):
                return obj.load_balancer_id
            if isinstance(obj, models.Member | models.HealthMonitor):
                return obj.pool.load_balancer_id
            if isinstance(obj, models.L7Policy):
                return obj.listener.load_balancer_id
            return obj.l7policy.listener.load_balancer_id  # L7Rule

    # -- pools ------------------------------------------------------------------------

    def _new_pool(self, session: Session, lb: models.LoadBalancer,
                  spec: dict[str, Any]) -> models.Pool:
        members = spec.pop("members", [])
        monitor = spec.pop("healthmonitor", None)
        try:
            protocol, algorithm = spec.pop("protocol"), spec.pop("lb_algorithm")
        except KeyError as exc:
            raise InvalidRequest(f"pool: {exc.args[0]} is required") from None
        common = {k: spec.pop(k) for k in ("name", "description", "admin_state_up", "tags",
                                           "id") if k in spec}
        options = _split(spec, _POOL_OPTIONS, "pool")
        pool = models.Pool(load_balancer=lb, protocol=protocol, lb_algorithm=algorithm,
                           provisioning_status=PENDING_CREATE, operating_status=OFFLINE,
                           options=options, **common)
        session.add(pool)
        if monitor is not None:
            session.add(self._new_monitor(pool, dict(monitor)))
        for member in members:
            session.add(self._new_member(pool, dict(member)))
        return pool

    def create_pool(self, loadbalancer_id: str | None = None, *, listener_id: str | None = None,
                    **spec: Any) -> dict[str, Any]:
        """A pool on an LB, or a listener's default pool (``listener_id``)."""
        if loadbalancer_id is None:
            if listener_id is None:
                raise InvalidRequest("pool: loadbalancer_id or listener_id is required")
            loadbalancer_id = self._lb_of(models.Listener, listener_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            pool = self._new_pool(session, lb, dict(spec))
            if listener_id is not None:
                listener = self._get(session, models.Listener, listener_id)
                if listener.default_pool_id is not None:
                    raise Conflict(f"listener {listener_id} already has a default pool")
                session.flush()
                listener.default_pool_id = pool.id
                listener.provisioning_status = PENDING_UPDATE
            return lambda: pool_dict(pool)
        return self._change(loadbalancer_id, "lb_update", mutate)

    def update_pool(self, pool_id: str, **changes: Any) -> dict[str, Any]:
        lb_id = self._lb_of(models.Pool, pool_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            pool = self._get(session, models.Pool, pool_id)
            changes_ = dict(changes)
            for key in ("name", "description", "admin_state_up", "lb_algorithm", "tags"):
                if key in changes_:
                    setattr(pool, key, changes_.pop(key))
            pool.options = {**pool.options, **_split(changes_, _POOL_OPTIONS, "pool")}
            pool.provisioning_status = PENDING_UPDATE
            return lambda: pool_dict(pool)
        return self._change(lb_id, "lb_update", mutate)

    def delete_pool(self, pool_id: str) -> None:
        lb_id = self._lb_of(models.Pool, pool_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> None:
            pool = self._get(session, models.Pool, pool_id)
            for listener in lb.listeners:
                if listener.default_pool_id == pool_id:
                    listener.default_pool_id = None
                    listener.provisioning_status = PENDING_UPDATE
            pool.provisioning_status = PENDING_DELETE
            for obj in [*pool.members, *([pool.healthmonitor] if pool.healthmonitor else [])]:
                obj.provisioning_status = PENDING_DELETE
        self._change(lb_id, "lb_update", mutate)

    def get_pool(self, pool_id: str) -> dict[str, Any]:
        with self.sessions() as session:
            return pool_dict(self._get(session, models.Pool, pool_id))

    # -- members -------------------------------------------------------------------------

    def _new_member(self, pool: models.Pool, spec: dict[str, Any]) -> models.Member:
        try:
            address, port = spec.pop("address"), spec.pop("protocol_port")
        except KeyError as exc:
            raise InvalidRequest(f"member: {exc.args[0]} is required") from None
        common = {k: spec.pop(k) for k in ("name", "admin_state_up", "weight", "backup",
                                           "subnet_id", "monitor_address", "monitor_port",
                                           "project_id", "tags", "id") if k in spec}
        _split(spec, (), "member")
        return models.Member(pool=pool, address=address, protocol_port=port,
                             provisioning_status=PENDING_CREATE,
                             operating_status=NO_MONITOR, **common)

    def create_member(self, pool_id: str, **spec: Any) -> dict[str, Any]:
        """A member; applied through the agent's runtime API, without a reload."""
        lb_id = self._lb_of(models.Pool, pool_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            member = self._new_member(self._get(session, models.Pool, pool_id), dict(spec))
            session.add(member)
            return lambda: member_dict(member)
        return self._change(lb_id, "member_update", mutate)

    def update_member(self, member_id: str, **changes: Any) -> dict[str, Any]:
        lb_id = self._lb_of(models.Member, member_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            member = self._get(session, models.Member, member_id)
            changes_ = dict(changes)
            for key in ("name", "admin_state_up", "weight", "backup", "monitor_address",
                        "monitor_port", "tags"):
                if key in changes_:
                    setattr(member, key, changes_.pop(key))
            _split(changes_, (), "member")
            member.provisioning_status = PENDING_UPDATE
            return lambda: member_dict(member)
        return self._change(lb_id, "member_update", mutate)

    def delete_member(self, member_id: str) -> None:
        lb_id = self._lb_of(models.Member, member_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> None:
            self._get(session, models.Member, member_id).provisioning_status = PENDING_DELETE
        self._change(lb_id, "member_update", mutate)

    def batch_update_members(self, pool_id: str, members: list[dict[str, Any]], *,
                             additive_only: bool = False) -> None:
        """Octavia's batch ``PUT`` of a pool's members: members are matched by
        (address, protocol_port); unmatched ones are created, matched ones updated,
        and (unless ``additive_only``) the pool's others deleted, in one change."""
        lb_id = self._lb_of(models.Pool, pool_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> None:
            pool = self._get(session, models.Pool, pool_id)
            current = {(m.address, m.protocol_port): m for m in pool.members
                       if m.provisioning_status != PENDING_DELETE}
            wanted: set[tuple[str, int]] = set()
            for spec in members:
                key = (spec["address"], spec["protocol_port"])
                if key in wanted:
                    raise InvalidRequest(f"member {key[0]}:{key[1]} is listed twice")
                wanted.add(key)
                member = current.get(key)
                if member is None:
                    session.add(self._new_member(pool, dict(spec)))
                    continue
                changed = False
                for name in ("name", "admin_state_up", "weight", "backup", "monitor_address",
                             "monitor_port", "tags"):
                    if name in spec and getattr(member, name) != spec[name]:
                        setattr(member, name, spec[name])
                        changed = True
                if changed:
                    member.provisioning_status = PENDING_UPDATE
            if not additive_only:
                for key, member in current.items():
                    if key not in wanted:
                        member.provisioning_status = PENDING_DELETE
        self._change(lb_id, "member_update", mutate)

    def get_member(self, member_id: str) -> dict[str, Any]:
        with self.sessions() as session:
            return member_dict(self._get(session, models.Member, member_id))

    # -- health monitors -------------------------------------------------------------------

    def _new_monitor(self, pool: models.Pool, spec: dict[str, Any]) -> models.HealthMonitor:
        try:
            required = {k: spec.pop(k) for k in ("type", "delay", "timeout", "max_retries")}
        except KeyError as exc:
            raise InvalidRequest(f"healthmonitor: {exc.args[0]} is required") from None
        common = {k: spec.pop(k) for k in ("name", "admin_state_up", "max_retries_down", "tags",
                                           "id") if k in spec}
        options = _split(spec, _HM_OPTIONS, "healthmonitor")
        return models.HealthMonitor(pool=pool, provisioning_status=PENDING_CREATE,
                                    operating_status=OFFLINE, options=options,
                                    **required, **common)

    def create_health_monitor(self, pool_id: str, **spec: Any) -> dict[str, Any]:
        lb_id = self._lb_of(models.Pool, pool_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            pool = self._get(session, models.Pool, pool_id)
            if pool.healthmonitor is not None:
                raise Conflict(f"pool {pool_id} already has a health monitor")
            monitor = self._new_monitor(pool, dict(spec))
            session.add(monitor)
            return lambda: healthmonitor_dict(monitor)
        return self._change(lb_id, "lb_update", mutate)

    def update_health_monitor(self, healthmonitor_id: str, **changes: Any) -> dict[str, Any]:
        lb_id = self._lb_of(models.HealthMonitor, healthmonitor_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            monitor = self._get(session, models.HealthMonitor, healthmonitor_id)
            changes_ = dict(changes)
            for key in ("name", "admin_state_up", "delay", "timeout", "max_retries",
                        "max_retries_down", "tags"):
                if key in changes_:
                    setattr(monitor, key, changes_.pop(key))
            monitor.options = {**monitor.options, **_split(changes_, _HM_OPTIONS,
                                                             "healthmonitor")}
            monitor.provisioning_status = PENDING_UPDATE
            return lambda: healthmonitor_dict(monitor)
        return self._change(lb_id, "lb_update", mutate)

    def delete_health_monitor(self, healthmonitor_id: str) -> None:
        lb_id = self._lb_of(models.HealthMonitor, healthmonitor_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> None:
            monitor = self._get(session, models.HealthMonitor, healthmonitor_id)
            monitor.provisioning_status = PENDING_DELETE
        self._change(lb_id, "lb_update", mutate)

    # -- L7 policies and rules ---------------------------------------------------------------

    def create_l7policy(self, listener_id: str, **spec: Any) -> dict[str, Any]:
        lb_id = self._lb_of(models.Listener, listener_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            listener = self._get(session, models.Listener, listener_id)
            spec_ = dict(spec)
            rules = spec_.pop("rules", [])
            try:
                action = spec_.pop("action")
            except KeyError:
                raise InvalidRequest("l7policy: action is required") from None
            if spec_.get("redirect_pool_id"):
                self._pool_of(session, lb, spec_["redirect_pool_id"])
            position = spec_.pop("position", None)
            common = {k: spec_.pop(k) for k in ("name", "description", "admin_state_up",
                                                "redirect_pool_id", "tags", "id")
                      if k in spec_}
            policy = models.L7Policy(listener=listener, action=action,
                                     provisioning_status=PENDING_CREATE,
                                     operating_status=OFFLINE,
                                     options=_split(spec_, _L7POLICY_OPTIONS, "l7policy"),
                                     **common)
            session.add(policy)
            renumber(listener, policy, position)
            for rule in rules:
                session.add(self._new_rule(policy, dict(rule)))
            return lambda: l7policy_dict(policy)
        return self._change(lb_id, "lb_update", mutate)

    def delete_l7policy(self, l7policy_id: str) -> None:
        lb_id = self._lb_of(models.L7Policy, l7policy_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> None:
            policy = self._get(session, models.L7Policy, l7policy_id)
            policy.provisioning_status = PENDING_DELETE
            for rule in policy.rules:
                rule.provisioning_status = PENDING_DELETE
            renumber(policy.listener)
        self._change(lb_id, "lb_update", mutate)

    def _new_rule(self, policy: models.L7Policy, spec: dict[str, Any]) -> models.L7Rule:
        try:
            required = {k: spec.pop(k) for k in ("type", "compare_type", "value")}
        except KeyError as exc:
            raise InvalidRequest(f"l7rule: {exc.args[0]} is required") from None
        common = {k: spec.pop(k) for k in ("key", "invert", "admin_state_up", "tags", "id")
                  if k in spec}
        _split(spec, (), "l7rule")
        return models.L7Rule(l7policy=policy, provisioning_status=PENDING_CREATE,
                             operating_status=OFFLINE, **required, **common)

    def create_l7rule(self, l7policy_id: str, **spec: Any) -> dict[str, Any]:
        lb_id = self._lb_of(models.L7Policy, l7policy_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> Any:
            rule = self._new_rule(self._get(session, models.L7Policy, l7policy_id), dict(spec))
            session.add(rule)
            return lambda: l7rule_dict(rule)
        return self._change(lb_id, "lb_update", mutate)

    def delete_l7rule(self, l7rule_id: str) -> None:
        lb_id = self._lb_of(models.L7Rule, l7rule_id)

        def mutate(session: Session, lb: models.LoadBalancer) -> None:
            self._get(session, models.L7Rule, l7rule_id).provisioning_status = PENDING_DELETE
        self._change(lb_id, "lb_update", mutate)


def _sum_stats(rows: Any) -> dict[str, int]:
    totals = dict.fromkeys(_STAT_FIELDS, 0)
    for row in rows:
        for name in _STAT_FIELDS:
            totals[name] += getattr(row, name) or 0
    return totals


def new_uuid() -> str:
    return str(uuid.uuid4())
