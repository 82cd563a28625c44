"""The state store: SQLAlchemy 2 models with Octavia's field names.

Every user-visible object carries ``provisioning_status`` and
``operating_status``; ``status_reason`` holds why something went to ERROR.
Fields of the LB model that the controller never queries on are kept in one
JSON ``options`` column per object (passed through to the renderer's model),
so new renderer features need no migration. Flows and their steps are the
durable work (see :mod:`controller_stub.controller.flows`).
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class _Stamped:
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, onupdate=utcnow)


class _Status(_Stamped):
    provisioning_status: Mapped[str] = mapped_column(String(16))
    operating_status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[str | None] = mapped_column(String(36))
    # Octavia's tags: free-form labels for clients (never read by the renderer)
    tags: Mapped[list[str] | None] = mapped_column(JSON, default=list)


class LoadBalancer(_Status, Base):
    __tablename__ = "load_balancer"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(64), default="amphora")
    topology: Mapped[str] = mapped_column(String(16))
    vip_address: Mapped[str | None] = mapped_column(String(64))
    vip_network_id: Mapped[str | None] = mapped_column(String(64))
    vip_subnet_id: Mapped[str | None] = mapped_column(String(64))
    vip_port_id: Mapped[str | None] = mapped_column(String(64))
    flavor_id: Mapped[str | None] = mapped_column(ForeignKey("flavor.id"))
    availability_zone: Mapped[str | None] = mapped_column(
        ForeignKey("availability_zone.name"))
    image_id: Mapped[str | None] = mapped_column(String(64))
    # the resolved flavor capabilities, fixed at create time
    flavor_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    listeners: Mapped[list[Listener]] = relationship(
        back_populates="load_balancer", cascade="all, delete-orphan",
        order_by="Listener.created_at")
    pools: Mapped[list[Pool]] = relationship(
        back_populates="load_balancer", cascade="all, delete-orphan", order_by="Pool.created_at")
    amphorae: Mapped[list[Amphora]] = relationship(back_populates="load_balancer",
                                                   order_by="Amphora.role")

    def children(self) -> list[Any]:
        """Every object below this LB: listeners, L7 policies and rules, pools,
        members and health monitors (what a flow settles with the LB)."""
        objects: list[Any] = [*self.listeners, *self.pools]
        for listener in self.listeners:
            for policy in listener.l7policies:
                objects += [policy, *policy.rules]
        for pool in self.pools:
            objects += list(pool.members)
            if pool.healthmonitor is not None:
                objects.append(pool.healthmonitor)
        return objects


class Listener(_Status, Base):
    __tablename__ = "listener"
    __table_args__ = (UniqueConstraint("load_balancer_id", "protocol", "protocol_port"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    load_balancer_id: Mapped[str] = mapped_column(ForeignKey("load_balancer.id"))
    protocol: Mapped[str] = mapped_column(String(32))
    protocol_port: Mapped[int] = mapped_column(Integer)
    connection_limit: Mapped[int] = mapped_column(Integer, default=-1)
    default_pool_id: Mapped[str | None] = mapped_column(
        ForeignKey("pool.id", use_alter=True, name="fk_listener_default_pool"))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    load_balancer: Mapped[LoadBalancer] = relationship(back_populates="listeners")
    l7policies: Mapped[list[L7Policy]] = relationship(
        back_populates="listener", cascade="all, delete-orphan", order_by="L7Policy.position",
        foreign_keys="L7Policy.listener_id")


class Pool(_Status, Base):
    __tablename__ = "pool"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    load_balancer_id: Mapped[str] = mapped_column(ForeignKey("load_balancer.id"))
    protocol: Mapped[str] = mapped_column(String(32))
    lb_algorithm: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    load_balancer: Mapped[LoadBalancer] = relationship(back_populates="pools")
    members: Mapped[list[Member]] = relationship(
        back_populates="pool", cascade="all, delete-orphan", order_by="Member.created_at")
    healthmonitor: Mapped[HealthMonitor | None] = relationship(
        back_populates="pool", cascade="all, delete-orphan", uselist=False)


class Member(_Status, Base):
    __tablename__ = "member"
    __table_args__ = (UniqueConstraint("pool_id", "address", "protocol_port"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    pool_id: Mapped[str] = mapped_column(ForeignKey("pool.id"))
    address: Mapped[str] = mapped_column(String(64))
    protocol_port: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    backup: Mapped[bool] = mapped_column(Boolean, default=False)
    subnet_id: Mapped[str | None] = mapped_column(String(64))
    monitor_address: Mapped[str | None] = mapped_column(String(64))
    monitor_port: Mapped[int | None] = mapped_column(Integer)
    pool: Mapped[Pool] = relationship(back_populates="members")


class HealthMonitor(_Status, Base):
    __tablename__ = "health_monitor"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    pool_id: Mapped[str] = mapped_column(ForeignKey("pool.id"), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    delay: Mapped[int] = mapped_column(Integer)
    timeout: Mapped[int] = mapped_column(Integer)
    max_retries: Mapped[int] = mapped_column(Integer)
    max_retries_down: Mapped[int] = mapped_column(Integer, default=3)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pool: Mapped[Pool] = relationship(back_populates="healthmonitor")


class L7Policy(_Status, Base):
    __tablename__ = "l7policy"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    listener_id: Mapped[str] = mapped_column(ForeignKey("listener.id"))
    action: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=1)
    redirect_pool_id: Mapped[str | None] = mapped_column(ForeignKey("pool.id"))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    listener: Mapped[Listener] = relationship(back_populates="l7policies",
                                              foreign_keys=[listener_id])
    rules: Mapped[list[L7Rule]] = relationship(
        back_populates="l7policy", cascade="all, delete-orphan", order_by="L7Rule.created_at")


class L7Rule(_Status, Base):
    __tablename__ = "l7rule"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    l7policy_id: Mapped[str] = mapped_column(ForeignKey("l7policy.id"))
    type: Mapped[str] = mapped_column(String(32))
    compare_type: Mapped[str] = mapped_column(String(32))
    key: Mapped[str | None] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(255))
    invert: Mapped[bool] = mapped_column(Boolean, default=False)
    l7policy: Mapped[L7Policy] = relationship(back_populates="rules")


class Amphora(_Stamped, Base):
    __tablename__ = "amphora"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    load_balancer_id: Mapped[str | None] = mapped_column(ForeignKey("load_balancer.id"))
    status: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    compute_id: Mapped[str | None] = mapped_column(String(64))
    compute_flavor: Mapped[str | None] = mapped_column(String(64))
    image_id: Mapped[str | None] = mapped_column(String(64))
    cached_zone: Mapped[str | None] = mapped_column(String(255))
    lb_network_ip: Mapped[str | None] = mapped_column(String(64))
    vrrp_ip: Mapped[str | None] = mapped_column(String(64))
    ha_ip: Mapped[str | None] = mapped_column(String(64))
    vrrp_port_id: Mapped[str | None] = mapped_column(String(64))
    vrrp_priority: Mapped[int | None] = mapped_column(Integer)
    status_reason: Mapped[str | None] = mapped_column(Text)
    # when its agent's server certificate expires (UTC); housekeeping rotates before
    cert_expiration: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    # what the compute driver needs to find this amphora again after a restart
    compute_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    load_balancer: Mapped[LoadBalancer | None] = relationship(back_populates="amphorae")


class FlavorProfile(_Stamped, Base):
    __tablename__ = "flavor_profile"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    provider_name: Mapped[str] = mapped_column(String(64), default="amphora")
    flavor_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Flavor(_Stamped, Base):
    __tablename__ = "flavor"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    flavor_profile_id: Mapped[str] = mapped_column(ForeignKey("flavor_profile.id"))
    flavor_profile: Mapped[FlavorProfile] = relationship()


class AvailabilityZoneProfile(_Stamped, Base):
    __tablename__ = "availability_zone_profile"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    provider_name: Mapped[str] = mapped_column(String(64), default="amphora")
    availability_zone_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AvailabilityZone(_Stamped, Base):
    __tablename__ = "availability_zone"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    availability_zone_profile_id: Mapped[str] = mapped_column(
        ForeignKey("availability_zone_profile.id"))
    availability_zone_profile: Mapped[AvailabilityZoneProfile] = relationship()


class Image(Base):
    """An image's version properties, cached when it is first selected."""

    __tablename__ = "image"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fetched_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class Flow(_Stamped, Base):
    """One change: an ordered list of steps, run by whichever controller holds the lease."""

    __tablename__ = "flow"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    load_balancer_id: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    lease_version: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    steps: Mapped[list[FlowStep]] = relationship(
        cascade="all, delete-orphan", order_by="FlowStep.index")


class FlowStep(Base):
    __tablename__ = "flow_step"
    __table_args__ = (UniqueConstraint("flow_id", "index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flow.id"))
    index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)


class AmphoraHealth(Base):
    """When an amphora's last verified heartbeat was stored (Octavia's amphora_health)."""

    __tablename__ = "amphora_health"
    amphora_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    last_update: Mapped[datetime.datetime] = mapped_column(DateTime, index=True)


class ListenerStatistics(Base):
    """Per-amphora listener counters, summed from the heartbeats' increments."""

    __tablename__ = "listener_statistics"
    listener_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    amphora_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    active_connections: Mapped[int] = mapped_column(Integer, default=0)
    total_connections: Mapped[int] = mapped_column(BigInteger, default=0)
    request_errors: Mapped[int] = mapped_column(BigInteger, default=0)


class Quota(Base):
    """A project's limits (Octavia's quotas); NULL means the configured default."""

    __tablename__ = "quota"
    project_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    load_balancer: Mapped[int | None] = mapped_column(Integer)
    listener: Mapped[int | None] = mapped_column(Integer)
    pool: Mapped[int | None] = mapped_column(Integer)
    health_monitor: Mapped[int | None] = mapped_column(Integer)
    member: Mapped[int | None] = mapped_column(Integer)
    l7policy: Mapped[int | None] = mapped_column(Integer)
    l7rule: Mapped[int | None] = mapped_column(Integer)
