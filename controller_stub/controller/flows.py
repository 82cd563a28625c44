"""Flows: each change is an ordered list of idempotent steps, persisted.

A flow row records its kind, the next step to run and who holds its lease.
The worker runs one step at a time: it does the work outside any
transaction, then advances ``flow.step`` in one update fenced by the lease
version, so a controller that lost its lease can never move a flow forward.
A step that raises is retried within its :class:`Budget` (attempts and a
wall-clock limit); once spent, the flow fails: every PENDING object of the
LB goes to ERROR with the reason, the LB too. Nothing is left PENDING.
Because every step is idempotent (a re-boot of an amphora starts from
scratch, configs are replaced whole, member changes are upserts), a flow
taken over after a crash simply re-runs its current step.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

import keepalived
from controller_stub.client import AgentError, AgentUnreachable
from controller_stub.controller import models
from controller_stub.controller.certificates import CertificateSource, lb_certificate_refs
from controller_stub.controller.compute import ComputeDriver
from controller_stub.controller.constants import (
    ACTIVE,
    ACTIVE_STANDBY,
    AMPHORA_ALLOCATED,
    AMPHORA_BOOTING,
    ERROR,
    FLOW_DONE,
    FLOW_FAILED,
    NO_MONITOR,
    OFFLINE,
    ONLINE,
    PENDING_CREATE,
    PENDING_DELETE,
    PENDING_STATUSES,
    PENDING_UPDATE,
    ROLE_BACKUP,
    ROLE_MASTER,
    ROLE_STANDALONE,
)
from controller_stub.controller.documents import backend_name, lb_doc
from controller_stub.controller.imaging import target_of
from haproxy_templates import RenderOptions, render
from haproxy_templates.model import cert_filename

LOG = logging.getLogger(__name__)
VIP_INTERFACE = "eth1"  # the agent's name for the VIP NIC (Octavia's too)

STEPS: dict[str, tuple[str, ...]] = {
    "lb_create": ("boot_amphorae", "plug_vip", "push_config", "vrrp", "finish"),
    "lb_update": ("push_config", "vrrp", "finish"),
    "member_update": ("apply_members", "finish"),
    "lb_delete": ("delete_amphorae", "finish"),
    "failover": ("boot_amphora", "plug_new", "configure_new", "vrrp_pair", "delete_old",
                 "finish"),
}
AMPHORA_REPLACED = "PENDING_DELETE"  # the amphora a failover flow replaces
RUNTIME_MEMBERS = "runtime-members"  # the agent extension that changes members live
# Test hook: "KIND:STEP" makes the process SIGKILL itself before that step,
# "KIND:STEP:after" after the step's work but before its completion is recorded.
KILL_AT_ENV = "AMPHORA_CONTROLLER_KILL_AT"
# Test hook: "KIND:STEP" holds that step until the controller shuts down.
PAUSE_AT_ENV = "AMPHORA_CONTROLLER_PAUSE_AT"


@dataclass(frozen=True)
class Budget:
    """How long one step may keep trying: attempts and seconds, whichever ends first."""

    attempts: int = 3
    seconds: float = 10.0
    backoff: float = 0.2
    agent_timeout: float = 3.0
    boot_timeout: float = 30.0


class LeaseLost(Exception):
    """Another controller took the flow over; stop without touching it."""


class StepFailed(Exception):
    """A step spent its budget; the message is the reason recorded on the objects."""



class FlowRunner:
    """Runs the steps of one flow for one controller (``owner``)."""

    def __init__(self, sessions: sessionmaker[Session], compute: ComputeDriver,
                 budget: Budget, owner: str,
                 certificates: CertificateSource | None = None,
                 keep_failed_amphorae: bool = False, connection_logging: bool = True) -> None:
        self.sessions, self.compute, self.budget, self.owner = sessions, compute, budget, owner
        self.certificates = certificates
        self.keep_failed_amphorae = keep_failed_amphorae
        self.connection_logging = connection_logging

    # -- driving -----------------------------------------------------------------

    def run(self, flow_id: str, lease_version: int, lease_ok: Callable[[], bool]) -> str:
        """Run the flow from its current step to the end; returns the final state."""
        while True:
            with self.sessions() as session:
                flow = session.get(models.Flow, flow_id)
                if flow is None or flow.state in (FLOW_DONE, FLOW_FAILED):
                    return flow.state if flow else FLOW_DONE
                kind, index = flow.kind, flow.step
                lb_id, params = flow.load_balancer_id, dict(flow.params)
            names = STEPS[kind]
            if index >= len(names):
                return FLOW_DONE
            name = names[index]
            _kill_hook(f"{kind}:{name}")
            self._record_step(flow_id, index, name, "RUNNING")
            if os.environ.get(PAUSE_AT_ENV) == f"{kind}:{name}":
                while lease_ok():  # test hook: hold the step until shutdown
                    time.sleep(0.05)
            try:
                # "finish" commits with the flow's last update (below): an LB must
                # never look ACTIVE while its flow could still re-run a step.
                result = (None if name == "finish"
                          else self._attempt(name, lb_id, params, lease_ok))
            except LeaseLost:
                raise
            except StepFailed as exc:
                reason, discarded = str(exc), False
                if kind == "lb_create" and not self.keep_failed_amphorae:
                    if not lease_ok():
                        raise LeaseLost(flow_id) from None
                    discarded, problem = self._discard_amphorae(lb_id)
                    if problem:
                        reason += f"; removing its amphorae failed: {problem}"
                if kind == "failover":
                    if not lease_ok():
                        raise LeaseLost(flow_id) from None
                    problem = self._discard_new(lb_id)
                    if problem:
                        reason += f"; removing the new amphora failed: {problem}"
                self._fail(flow_id, lease_version, lb_id, index, name, reason, discarded)
                return FLOW_FAILED
            _kill_hook(f"{kind}:{name}:after")
            if not lease_ok():
                raise LeaseLost(flow_id)
            with self.sessions.begin() as session:
                done = index + 1 >= len(names)
                values: dict[str, Any] = {"step": index + 1}
                if result:
                    values["params"] = {**params, **result}
                if done:
                    values.update(state=FLOW_DONE, owner=None, lease_expires=None)
                moved = session.execute(update(models.Flow).where(
                    models.Flow.id == flow_id, models.Flow.lease_version == lease_version,
                    models.Flow.owner == self.owner).values(**values)).rowcount
                if moved != 1:
                    raise LeaseLost(flow_id)
                self._step_row(session, flow_id, index, name, "DONE")
                if name == "finish":
                    self.finish(session, lb_id)
                if done and kind == "lb_delete":
                    self._forget_lb(session, lb_id)
            if done:
                return FLOW_DONE

    def _attempt(self, name: str, lb_id: str, params: dict[str, Any],
                 lease_ok: Callable[[], bool]) -> dict[str, Any] | None:
        step = getattr(self, f"step_{name}")
        deadline = time.monotonic() + self.budget.seconds
        last: Exception | None = None
        for attempt in range(self.budget.attempts):
            if not lease_ok():
                raise LeaseLost(lb_id)
            try:
                return step(lb_id, params)
            except StepFailed:
                raise
            except Exception as exc:
                last = exc
                LOG.warning("step %s of LB %s failed (attempt %d/%d): %s", name, lb_id,
                            attempt + 1, self.budget.attempts, exc)
            if time.monotonic() + self.budget.backoff >= deadline:
                break
            time.sleep(self.budget.backoff * (attempt + 1))
        raise StepFailed(f"{name}: {_reason(last)}")

    def _record_step(self, flow_id: str, index: int, name: str, state: str) -> None:
        with self.sessions.begin() as session:
            self._step_row(session, flow_id, index, name, state)

    def _step_row(self, session: Session, flow_id: str, index: int, name: str, state: str,
                  error: str | None = None) -> None:
        row = session.scalars(select(models.FlowStep).where(
            models.FlowStep.flow_id == flow_id, models.FlowStep.index == index)).first()
        if row is None:
            row = models.FlowStep(flow_id=flow_id, index=index, name=name, attempts=0)
            session.add(row)
        now = models.utcnow()
        row.state, row.owner, row.error = state, self.owner, error
        if state == "RUNNING":
            row.attempts += 1
            row.started_at = now
        else:
            row.finished_at = now

    def _discard_amphorae(self, lb_id: str) -> tuple[bool, str | None]:
        """A failed create: remove the compute it made (namespaces, agents, addresses).

        Returns (removed, problem). On a problem the rows stay, so deleting the
        LB later retries the removal; a crash here leaves the flow to be taken
        over, which re-runs the failed step and comes back here.
        """
        with self.sessions() as session:
            amphorae = [(a.id, dict(a.compute_data)) for a in self._load(session, lb_id).amphorae]
        try:
            _each(lambda item: self.compute.delete(*item), amphorae)
            self.compute.release(lb_id)
        except Exception as exc:
            LOG.error("removing the amphorae of failed LB %s: %s", lb_id, exc)
            return False, _reason(exc)
        return True, None

    def _fail(self, flow_id: str, lease_version: int, lb_id: str, index: int, name: str,
              reason: str, discarded: bool = False) -> None:
        LOG.error("flow %s for LB %s failed: %s", flow_id, lb_id, reason)
        with self.sessions.begin() as session:
            moved = session.execute(update(models.Flow).where(
                models.Flow.id == flow_id, models.Flow.lease_version == lease_version).values(
                state=FLOW_FAILED, error=reason, owner=None, lease_expires=None)).rowcount
            if moved != 1:
                raise LeaseLost(flow_id)
            self._step_row(session, flow_id, index, name, "FAILED", reason)
            lb = session.get(models.LoadBalancer, lb_id)
            if lb is None:
                return
            for obj in [lb, *lb.children()]:
                if obj.provisioning_status in PENDING_STATUSES:
                    obj.provisioning_status, obj.status_reason = ERROR, reason
            lb.provisioning_status, lb.status_reason = ERROR, reason
            lb.operating_status = ERROR
            if discarded:
                session.execute(delete(models.Amphora).where(
                    models.Amphora.load_balancer_id == lb_id))
                lb.vip_address = lb.vip_port_id = None  # released with the compute

    @staticmethod
    def _forget_lb(session: Session, lb_id: str) -> None:
        lb = session.get(models.LoadBalancer, lb_id)
        if lb is not None:
            for listener in lb.listeners:
                listener.default_pool_id = None
            session.flush()
            session.execute(delete(models.Amphora).where(
                models.Amphora.load_balancer_id == lb_id))
            session.delete(lb)
        flows = select(models.Flow.id).where(models.Flow.load_balancer_id == lb_id)
        session.execute(delete(models.FlowStep).where(models.FlowStep.flow_id.in_(flows)))
        session.execute(delete(models.Flow).where(models.Flow.load_balancer_id == lb_id))

    # -- helpers -------------------------------------------------------------------

    def _client(self, amphora: models.Amphora) -> Any:
        return self.compute.client(amphora.id, amphora.compute_data, retries=0,
                                   retry_interval=0.05, timeout=self.budget.agent_timeout)

    def _load(self, session: Session, lb_id: str) -> models.LoadBalancer:
        lb = session.get(models.LoadBalancer, lb_id)
        if lb is None:
            raise StepFailed(f"load balancer {lb_id} vanished")
        return lb

    # -- steps -------------------------------------------------------------------

    def step_boot_amphorae(self, lb_id: str, params: dict[str, Any]) -> None:
        with self.sessions.begin() as session:
            lb = self._load(session, lb_id)
            flavor, topology, image_id = dict(lb.flavor_data), lb.topology, lb.image_id
            roles = ([ROLE_MASTER, ROLE_BACKUP] if topology == ACTIVE_STANDBY
                     else [ROLE_STANDALONE])
            existing = {a.role: a for a in lb.amphorae}
            role_zones = flavor.get("role_zones") or {}
            for role in roles:
                if role not in existing:
                    zone_name = role_zones.get(role, {}).get("name", lb.availability_zone)
                    session.add(models.Amphora(load_balancer_id=lb_id, role=role,
                                               status=AMPHORA_BOOTING, image_id=lb.image_id,
                                               compute_flavor=flavor.get("compute_flavor"),
                                               cached_zone=zone_name, compute_data={}))
        with self.sessions() as session:
            amphorae = [(a.id, a.status, a.role)
                        for a in self._load(session, lb_id).amphorae]

        def boot(item: tuple[str, str, str]) -> None:
            amphora_id, _, role = item
            zone = role_zones.get(role)  # anti-affinity: each role its own zone
            if zone is not None:
                zone = {**zone, "compute_zone": zone.get("compute_zone", zone["name"])}
            data = self.compute.boot(amphora_id, topology=topology, flavor=flavor,
                                     zone=zone or flavor.get("zone") or None,
                                     timeout=self.budget.boot_timeout, image_id=image_id,
                                     lb_id=lb_id)
            with self.sessions.begin() as session:
                amphora = session.get(models.Amphora, amphora_id)
                assert amphora is not None
                amphora.compute_data = data
                amphora.compute_id = data.get("compute_id", data["namespace"])
                amphora.lb_network_ip, amphora.status = data["mgmt_ip"], AMPHORA_ALLOCATED
                amphora.cert_expiration = _cert_expiration(data)

        # an amphora booted before a crash is kept
        _each(boot, [a for a in amphorae if a[1] != AMPHORA_ALLOCATED])

    def step_plug_vip(self, lb_id: str, params: dict[str, Any]) -> None:
        with self.sessions() as session:
            lb = self._load(session, lb_id)
            network, topology = lb.vip_network_id or "vip", lb.topology
            requested = params.get("vip_address")  # the client's, if it asked for one
            amphorae = [(a.id, dict(a.compute_data), a.role) for a in lb.amphorae]
        hold = getattr(self.compute, "hold_address", None)
        if requested and hold is not None:
            hold(f"{lb_id}:vip", network, requested)
        # ACTIVE_STANDBY: the VIP is an address of its own that keepalived moves;
        # SINGLE: the amphora's port address is the VIP unless one was requested.
        if topology == ACTIVE_STANDBY:
            shared_vip = requested or self.compute.allocate_address(lb_id, network)[0]
            _each(lambda item: self._plug(lb_id, item, network, shared_vip), amphorae)
        else:
            _each(lambda item: self._plug(lb_id, item, network, None, requested), amphorae)

    def _plug(self, lb_id: str, item: tuple[str, dict[str, Any], str], network: str,
              shared_vip: str | None, single_vip: str | None = None) -> None:
        """Attach the VIP port of one amphora and plug it; ``single_vip``: a SINGLE
        failover's replacement serves the LB's existing VIP, not its port's address."""
        amphora_id, data, role = item
        port = self.compute.attach_port(amphora_id, data, network, "vip")
        body: dict[str, Any] = {
            "subnet_cidr": port.subnet_cidr, "gateway": port.gateway,
            "mac_address": port.mac, "vrrp_ip": None, "mtu": 1500, "host_routes": [],
            "additional_vips": [], "is_sriov": False}
        address = single_vip or port.ipv4
        if shared_vip is not None:
            body["vrrp_ip"], address = port.ipv4, shared_vip
        with self.sessions.begin() as session:  # record the port before plugging it
            amphora = session.get(models.Amphora, amphora_id)
            assert amphora is not None
            amphora.compute_data = data
            amphora.vrrp_ip, amphora.ha_ip = port.ipv4, address
            amphora.vrrp_priority = 100 if role == ROLE_BACKUP else (
                200 if role == ROLE_MASTER else None)
        with self._client_for(amphora_id) as client:
            root = client.root()
        if agent_kind(root) == "octavia":
            # Octavia's agent runs DHCP for the port's own address unless it is the
            # vrrp_ip, which may not be the VIP: the VIP is an address of its own
            if address == port.ipv4:
                address = self.compute.allocate_address(lb_id, network)[0]
            body["vrrp_ip"] = port.ipv4

        def facts() -> tuple[dict[str, Any], dict[str, Any]]:
            with self._client_for(amphora_id) as client:
                return client.details(), client.info()

        with ThreadPoolExecutor(max_workers=1) as side:
            # what the amphora reports does not depend on the plug: ask meanwhile
            # (Octavia's agent answers one request at a time: after the plug)
            asked = side.submit(facts) if agent_kind(root) == "amphora" else None
            with self._client_for(amphora_id) as client:
                try:
                    client.plug_vip(address, body)
                except AgentError as exc:
                    # Plugged before a crash: ours names our MAC, Octavia's only
                    # looks for it (as Octavia's controller, a 409 for the same port
                    # is success).
                    if exc.status != 409 or (port.mac not in str(exc)
                                             and agent_kind(root) != "octavia"):
                        raise
            details, info = asked.result() if asked is not None else facts()
        target = {"haproxy_version": info["haproxy_version"],
                  "cpu_count": details["cpu_count"], "memory_kb": details["memory"]["total"]}
        if "open_file_limit" in details:  # ours; Octavia's agent does not say
            target["fd_limit"] = details["open_file_limit"]["hard"]
        elif "fd_limit" in data:  # what the compute driver knows of it
            target["fd_limit"] = data["fd_limit"]
        with self.sessions.begin() as session:
            amphora = session.get(models.Amphora, amphora_id)
            assert amphora is not None
            amphora.compute_data = {**data, "target": target,
                                    "agent": agent_profile(info, root)}
            amphora.ha_ip = address
            lb = self._load(session, lb_id)
            lb.vip_address, lb.vip_port_id = address, port.mac

    def _client_for(self, amphora_id: str) -> Any:
        with self.sessions() as session:
            amphora = session.get(models.Amphora, amphora_id)
            assert amphora is not None
            return self._client(amphora)

    def _render(self, session: Session, lb: models.LoadBalancer,
                amphora: models.Amphora) -> str:
        from haproxy_templates import Target

        image = session.get(models.Image, lb.image_id) if lb.image_id else None
        facts = dict(amphora.compute_data.get("target", {}))
        properties = image.properties if image is not None else {}
        base = target_of({**properties, **({"haproxy_version": facts["haproxy_version"]}
                                            if "haproxy_version" in facts else {})})
        threads = lb.flavor_data.get("haproxy_threads")
        target = Target(haproxy_version=base.haproxy_version,
                        openssl_version=base.openssl_version, services=base.services,
                        cpu_count=threads or facts.get("cpu_count", 1),
                        memory_kb=facts.get("memory_kb", 1024 * 1024),
                        fd_limit=facts.get("fd_limit", 1024 * 1024))
        root = amphora.compute_data.get("root")
        options = RenderOptions(base_path=f"{root}/lib" if root else "/var/lib/octavia",
                                cert_dir=f"{root}/lib/certs" if root else
                                "/var/lib/octavia/certs",
                                connection_logging=self.connection_logging)
        return render(lb_doc(lb), amphora_id=amphora.id, target=target, options=options)

    def _certificates(self, lb: models.LoadBalancer) -> dict[str, bytes]:
        """filename → PEM bundle for every certificate the LB's live listeners and pools name."""
        refs = lb_certificate_refs(
            [dict(li.options) for li in lb.listeners if li.provisioning_status != PENDING_DELETE],
            [dict(p.options) for p in lb.pools if p.provisioning_status != PENDING_DELETE])
        if not refs:
            return {}
        if self.certificates is None:
            raise StepFailed("push_config: no certificate source configured")
        return {cert_filename(ref): self.certificates.get(ref) for ref in refs}

    def step_push_config(self, lb_id: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """Certificates, then config, then reload, then (ACTIVE_STANDBY) VRRP, on every
        amphora at once; each amphora goes on to VRRP as soon as its own reload is done
        rather than waiting for the slowest one (the ``vrrp`` step is then a no-op)."""
        return self._push_config(lb_id)

    def _push_config(self, lb_id: str, only: str | None = None,
                     with_vrrp: bool = True) -> dict[str, Any] | None:
        with self.sessions() as session:
            lb = self._load(session, lb_id)
            has_listeners = any(li.provisioning_status != PENDING_DELETE
                                for li in lb.listeners)
            certificates = self._certificates(lb)
            vrrp = ({a.id: text for a, text in self._vrrp_configs(lb)} if with_vrrp else {})
            work = [(a, self._render(session, lb, a) if has_listeners else None)
                    for a in lb.amphorae if only is None or a.id == only]
        def push(item: tuple[models.Amphora, str | None]) -> None:
            amphora, text = item
            with self._client(amphora) as client:
                if text is None:
                    try:
                        client.delete_listener(lb_id)
                    except AgentError as exc:
                        if exc.status != 404:
                            raise
                else:
                    # HAProxy must find every crt/ca-file it names when it loads
                    for filename, pem in certificates.items():
                        client.upload_cert(lb_id, filename, pem)
                    client.upload_haproxy(amphora.id, lb_id, text)
                    client.lb_action(lb_id, "reload")
                if amphora.id in vrrp:
                    client.upload_vrrp(vrrp[amphora.id])
                    client.vrrp_action("start")

        _each(push, work)
        return {"vrrp_pushed": True} if vrrp else None

    def _vrrp_configs(self, lb: models.LoadBalancer) -> list[tuple[models.Amphora, str]]:
        """ACTIVE_STANDBY: each amphora's keepalived side (empty for SINGLE)."""
        if lb.topology != ACTIVE_STANDBY:
            return []
        advert = lb.flavor_data.get("vrrp_advert_int")
        has_listeners = any(li.provisioning_status != PENDING_DELETE for li in lb.listeners)
        # the amphora a failover replaces is no peer any more
        amphorae = [a for a in lb.amphorae if a.status != AMPHORA_REPLACED]
        configs = []
        for amphora in amphorae:
            peers = tuple(a.vrrp_ip for a in amphorae if a.id != amphora.id)
            port = amphora.compute_data["ports"]["vip"]
            root = amphora.compute_data.get("root")
            # the track names the process our agent runs HAProxy as; Octavia's
            # agent runs it as plain haproxy: no track there
            ours = amphora.compute_data.get("agent", {}).get("kind", "amphora") == "amphora"
            track = keepalived.HaproxyTrack(
                lb_id=lb.id, base_path=f"{root}/lib" if root else "/var/lib/octavia",
            ) if (has_listeners and ours
                  and getattr(self.compute, "vrrp_track_haproxy", True)) else None
            instance = keepalived.VrrpInstance(
                lb_id=lb.id, amphora_id=amphora.id, role=amphora.role,
                interface=VIP_INTERFACE, virtual_router_id=_router_id(lb.id),
                unicast_src_ip=amphora.vrrp_ip, unicast_peers=peers, vip=lb.vip_address,
                vip_network=port["subnet_cidr"], vip_gateway=port["gateway"],
                priority=amphora.vrrp_priority, track_haproxy=track,
                **({"advert_int": advert} if advert else {}))
            configs.append((amphora, keepalived.render(instance)))
        return configs

    def step_vrrp(self, lb_id: str, params: dict[str, Any]) -> None:
        """ACTIVE_STANDBY: render each amphora's keepalived side, upload, start (or reload).

        Usually already done by ``push_config`` right after each amphora's reload
        (``vrrp_pushed``); this step then only records it.
        """
        if params.get("vrrp_pushed"):
            return
        with self.sessions() as session:
            configs = self._vrrp_configs(self._load(session, lb_id))

        def push(item: tuple[models.Amphora, str]) -> None:
            with self._client(item[0]) as client:
                client.upload_vrrp(item[1])
                client.vrrp_action("start")

        _each(push, configs)

    def step_apply_members(self, lb_id: str, params: dict[str, Any]) -> None:
        """Member changes through the agent's runtime extension: no reload; an
        agent without it (Octavia's) gets the whole config and a reload."""
        with self.sessions() as session:
            lb = self._load(session, lb_id)
            changes: list[tuple[str, str, dict[str, Any] | None]] = []
            for pool in lb.pools:
                # the renderer makes one backend per (pool, listener) that uses the
                # pool: as its default pool or as an L7 redirect target
                backends = [backend_name(pool.id, li.id) for li in lb.listeners
                            if li.provisioning_status != PENDING_DELETE and (
                                li.default_pool_id == pool.id or any(
                                    p.redirect_pool_id == pool.id
                                    and p.provisioning_status != PENDING_DELETE
                                    for p in li.l7policies))]
                for member in pool.members:
                    if member.provisioning_status not in PENDING_STATUSES:
                        continue
                    body = None if member.provisioning_status == PENDING_DELETE else {
                        "address": member.address, "port": member.protocol_port,
                        "weight": member.weight,
                        "state": "ready" if member.admin_state_up else "maint"}
                    if body is not None and member.backup:
                        body["backup"] = True  # the agent applies this one with a reload
                    changes += [(backend, member.id, body) for backend in backends]
            amphorae = [a for a in lb.amphorae if RUNTIME_MEMBERS in
                        a.compute_data.get("agent", {}).get("extensions", [RUNTIME_MEMBERS])]
            reload = [a.id for a in lb.amphorae if a not in amphorae]
        for amphora_id in reload:
            self._push_config(lb_id, only=amphora_id, with_vrrp=False)

        def apply(amphora: models.Amphora) -> None:
            with self._client(amphora) as client:
                for backend, member_id, body in changes:
                    if body is None:
                        try:
                            client.delete_server(lb_id, backend, member_id)
                        except AgentError as exc:
                            if exc.status != 404:  # already gone: a repeated step
                                raise
                    else:
                        client.set_server(lb_id, backend, member_id, **body)

        _each(apply, amphorae)

    def step_delete_amphorae(self, lb_id: str, params: dict[str, Any]) -> None:
        with self.sessions() as session:
            amphorae = [(a.id, dict(a.compute_data)) for a in self._load(session, lb_id).amphorae]
        _each(lambda item: self.compute.delete(*item), amphorae)
        self.compute.release(lb_id)

    # -- failover -------------------------------------------------------------------

    def _replacement(self, session: Session, lb_id: str) -> models.Amphora | None:
        return session.scalars(select(models.Amphora).where(
            models.Amphora.load_balancer_id == lb_id,
            models.Amphora.status == AMPHORA_BOOTING)).first()

    def step_boot_amphora(self, lb_id: str, params: dict[str, Any]) -> None:
        """Mark the old amphora replaced (no longer a VRRP peer) and boot its
        replacement; for ACTIVE_STANDBY the replacement joins as BACKUP."""
        old_id = params["amphora_id"]
        with self.sessions.begin() as session:
            lb = self._load(session, lb_id)
            old = session.get(models.Amphora, old_id)
            if old is None or old.load_balancer_id != lb_id:
                raise StepFailed(f"boot_amphora: amphora {old_id} is not one of LB {lb_id}")
            flavor, topology = dict(lb.flavor_data), lb.topology
            zone_name = old.cached_zone
            zone = (flavor.get("role_zones") or {}).get(old.role)
            old.status = AMPHORA_REPLACED
            new = self._replacement(session, lb_id)
            if new is None:
                new = models.Amphora(
                    load_balancer_id=lb_id, status=AMPHORA_BOOTING,
                    role=ROLE_BACKUP if topology == ACTIVE_STANDBY else ROLE_STANDALONE,
                    image_id=lb.image_id, compute_flavor=flavor.get("compute_flavor"),
                    cached_zone=zone_name, compute_data={})
                session.add(new)
                session.flush()
            new_id, image_id = new.id, lb.image_id
        if zone is not None:
            zone = {**zone, "compute_zone": zone.get("compute_zone", zone["name"])}
        data = self.compute.boot(new_id, topology=topology, flavor=flavor,
                                 zone=zone or flavor.get("zone") or None,
                                 timeout=self.budget.boot_timeout, image_id=image_id,
                                 lb_id=lb_id)
        with self.sessions.begin() as session:
            amphora = session.get(models.Amphora, new_id)
            assert amphora is not None
            amphora.compute_data, amphora.compute_id = data, data["namespace"]
            amphora.lb_network_ip = data["mgmt_ip"]
            amphora.cert_expiration = _cert_expiration(data)

    def step_plug_new(self, lb_id: str, params: dict[str, Any]) -> None:
        """The replacement's VIP port. SINGLE: the old amphora goes first (its VIP
        moves to the replacement and is kept held for the LB)."""
        with self.sessions() as session:
            lb = self._load(session, lb_id)
            network, topology, vip = lb.vip_network_id or "vip", lb.topology, lb.vip_address
            new = self._replacement(session, lb_id)
            if new is None:
                raise StepFailed("plug_new: the replacement amphora vanished")
            item = (new.id, dict(new.compute_data), new.role)
            old = session.get(models.Amphora, params["amphora_id"])
            old_data = dict(old.compute_data) if old is not None else {}
        if topology == ACTIVE_STANDBY:
            self._plug(lb_id, item, network, self.compute.allocate_address(lb_id, network)[0])
            return
        if vip is None:
            raise StepFailed("plug_new: the load balancer has no VIP address")
        hold = getattr(self.compute, "hold_address", None)
        if hold is not None:
            hold(f"{lb_id}:vip", network, vip)
        self.compute.delete(params["amphora_id"], old_data)
        self._plug(lb_id, item, network, None, single_vip=vip)

    def step_configure_new(self, lb_id: str, params: dict[str, Any]) -> None:
        """Certificates, config and reload on the replacement only."""
        with self.sessions() as session:
            new = self._replacement(session, lb_id)
            if new is None:
                raise StepFailed("configure_new: the replacement amphora vanished")
            new_id = new.id
        self._push_config(lb_id, only=new_id, with_vrrp=False)

    def step_vrrp_pair(self, lb_id: str, params: dict[str, Any]) -> None:
        """ACTIVE_STANDBY: the survivor becomes (or stays) MASTER and learns its new
        peer first, then the replacement starts as BACKUP: with ``nopreempt`` and a
        lower priority it never takes the VIP from the serving survivor."""
        with self.sessions.begin() as session:
            lb = self._load(session, lb_id)
            if lb.topology != ACTIVE_STANDBY:
                return
            for amphora in lb.amphorae:
                if amphora.status == AMPHORA_ALLOCATED:
                    amphora.role, amphora.vrrp_priority = ROLE_MASTER, 200
        with self.sessions() as session:
            configs = self._vrrp_configs(self._load(session, lb_id))
        configs.sort(key=lambda item: item[0].status != AMPHORA_ALLOCATED)  # survivor first
        for amphora, text in configs:
            with self._client(amphora) as client:
                client.upload_vrrp(text)
                client.vrrp_action("start")

    def step_delete_old(self, lb_id: str, params: dict[str, Any]) -> None:
        old_id = params["amphora_id"]
        with self.sessions() as session:
            old = session.get(models.Amphora, old_id)
            data = dict(old.compute_data) if old is not None else {}
        self.compute.delete(old_id, data)
        with self.sessions.begin() as session:
            session.execute(delete(models.Amphora).where(models.Amphora.id == old_id))
            session.execute(delete(models.AmphoraHealth).where(
                models.AmphoraHealth.amphora_id == old_id))
            session.execute(delete(models.ListenerStatistics).where(
                models.ListenerStatistics.amphora_id == old_id))

    def _discard_new(self, lb_id: str) -> str | None:
        """A failed failover: remove the replacement it booted; the old amphora stays
        (marked replaced) for the next failover to take."""
        with self.sessions() as session:
            new = self._replacement(session, lb_id)
            item = (new.id, dict(new.compute_data)) if new is not None else None
        if item is None:
            return None
        try:
            self.compute.delete(*item)
        except Exception as exc:
            LOG.error("removing the replacement amphora of LB %s: %s", lb_id, exc)
            return _reason(exc)
        with self.sessions.begin() as session:
            session.execute(delete(models.Amphora).where(models.Amphora.id == item[0]))
        return None

    def finish(self, session: Session, lb_id: str) -> None:
        """Settle every PENDING object of the LB, in the caller's transaction."""
        lb = self._load(session, lb_id)
        if lb.provisioning_status == PENDING_DELETE:
            return  # lb_delete: the rows go in the same transaction
        for listener in lb.listeners:
            for policy in list(listener.l7policies):
                for rule in list(policy.rules):
                    _settle(session, rule, policy.rules)
                _settle(session, policy, listener.l7policies)
        for pool in lb.pools:
            has_monitor = (pool.healthmonitor is not None and
                           pool.healthmonitor.provisioning_status != PENDING_DELETE)
            for member in list(pool.members):
                _settle(session, member, pool.members,
                        NO_MONITOR if not has_monitor else OFFLINE)
            if pool.healthmonitor is not None:
                if pool.healthmonitor.provisioning_status == PENDING_DELETE:
                    session.delete(pool.healthmonitor)
                    pool.healthmonitor = None
                else:
                    _settle(session, pool.healthmonitor, None)
        for listener in list(lb.listeners):
            if listener.provisioning_status == PENDING_DELETE:
                listener.default_pool_id = None
            _settle(session, listener, lb.listeners)
        session.flush()
        for pool in list(lb.pools):
            _settle(session, pool, lb.pools)
        for amphora in lb.amphorae:  # a failover's replacement is in service now
            if amphora.status == AMPHORA_BOOTING:
                amphora.status = AMPHORA_ALLOCATED
        lb.provisioning_status, lb.status_reason = ACTIVE, None
        lb.operating_status = ONLINE if lb.admin_state_up else OFFLINE


def _settle(session: Session, obj: Any, siblings: list[Any] | None,
            operating: str = ONLINE) -> None:
    """PENDING_DELETE → row removed; PENDING_CREATE/UPDATE → ACTIVE with its operating status."""
    if obj.provisioning_status == PENDING_DELETE:
        if siblings is not None:
            siblings.remove(obj)
        session.delete(obj)
    elif obj.provisioning_status in (PENDING_CREATE, PENDING_UPDATE):
        obj.provisioning_status, obj.status_reason = ACTIVE, None
        obj.operating_status = operating if obj.admin_state_up else OFFLINE


def _each(func: Callable[[Any], Any], items: list[Any]) -> None:
    """``func`` on every amphora at once (a pair boots, plugs and reloads in parallel);
    the first failure is raised after all have finished."""
    if len(items) <= 1:
        for item in items:
            func(item)
        return
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = [pool.submit(func, item) for item in items]
    for future in futures:
        future.result()


def _cert_expiration(compute_data: dict[str, Any]) -> datetime.datetime | None:
    """The server certificate expiry the compute driver recorded at boot."""
    value = compute_data.get("cert_expiration")
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else None


def _router_id(lb_id: str) -> int:
    """A VRRP router id from the LB id (unicast peers keep pairs apart anyway)."""
    return 1 + int(lb_id.replace("-", "")[:8], 16) % 255


def _kill_hook(point: str) -> None:
    if os.environ.get(KILL_AT_ENV) == point:
        LOG.warning("test hook: SIGKILL at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "no attempt made"
    if isinstance(exc, AgentUnreachable):
        return f"amphora unreachable: {str(exc)[:300]}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def agent_profile(info: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """What the amphora's agent is and offers, from ``/1.0/info`` and ``GET /``.

    ``agent_version`` is absent from Octavia's agent and from Amphora releases
    before 0.2.0, which still list their extensions; Octavia's lists none.
    """
    extensions = sorted(str(e) for e in root.get("extensions", []))
    return {"kind": agent_kind(root), "api_version": str(info.get("api_version", "")),
            "agent_version": info.get("agent_version"), "extensions": extensions}


def agent_kind(root: dict[str, Any]) -> str:
    """``amphora`` (ours, any release: ``GET /`` lists extensions) or ``octavia``."""
    return "amphora" if "extensions" in root else "octavia"
