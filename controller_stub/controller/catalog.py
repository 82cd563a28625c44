"""Flavors, availability zones, their profiles and the provider, as Octavia's API shows them.

The creates are :class:`~controller_stub.controller.api.Controller` methods;
these are the reads, updates and deletes. Octavia's rules: a profile's data
or provider cannot change while a flavor (zone) uses it, and neither a
profile in use nor a flavor (zone) an LB uses can be deleted (409).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller_stub.controller import flavors, models
from controller_stub.controller.errors import Conflict, InvalidRequest, NotFound

PROVIDER = "amphora"
# Octavia's enabled_provider_drivers default: "octavia" is the amphora driver's old name
PROVIDERS = {"amphora": "The Amphora driver: HAProxy and keepalived amphorae.",
             "octavia": "Deprecated alias of the Amphora driver."}


def check_provider(name: str) -> str:
    if name not in PROVIDERS:
        raise InvalidRequest(f"Provider '{name}' is not enabled.")
    return name


def flavor_capabilities() -> list[dict[str, str]]:
    return [{"name": k, "description": v} for k, v in flavors.FLAVOR_KEYS.items()]


def zone_capabilities() -> list[dict[str, str]]:
    return [{"name": k, "description": v} for k, v in flavors.ZONE_KEYS.items()]


def _row(session: Session, model: type[Any], key: str, what: str) -> Any:
    row = session.get(model, key)
    if row is None:
        raise NotFound(f"{what} {key} not found.")
    return row


def _count(session: Session, column: Any, value: str) -> int:
    return int(session.scalar(select(func.count()).where(column == value)) or 0)


# -- profiles: flavor profiles and availability zone profiles --------------------------

@dataclass(frozen=True)
class _ProfileKind:
    """What differs between the two kinds of profile; Octavia's rules are the same."""

    model: type[Any]
    label: str                       # as Octavia's messages name it
    data_field: str                  # flavor_data / availability_zone_data
    validate: Callable[[Any], dict[str, Any]]
    used_by: Any                     # the column of the flavors (zones) that use a profile

    def as_dict(self, row: Any) -> dict[str, Any]:
        return {"id": row.id, "name": row.name, "provider_name": row.provider_name,
                self.data_field: dict(getattr(row, self.data_field))}

    def list(self, sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
        with sessions() as session:
            return [self.as_dict(r) for r in session.scalars(
                select(self.model).order_by(self.model.created_at))]

    def get(self, sessions: sessionmaker[Session], profile_id: str) -> dict[str, Any]:
        with sessions() as session:
            return self.as_dict(_row(session, self.model, profile_id, self.label))

    def update(self, sessions: sessionmaker[Session], profile_id: str,
               **changes: Any) -> dict[str, Any]:
        with sessions.begin() as session:
            row = _row(session, self.model, profile_id, self.label)
            if {self.data_field, "provider_name"} & set(changes):
                self._refuse_in_use(session, profile_id)
            if "provider_name" in changes:
                row.provider_name = check_provider(changes["provider_name"])
            if self.data_field in changes:
                setattr(row, self.data_field, self.validate(changes[self.data_field]))
            if "name" in changes:
                row.name = changes["name"]
            session.flush()
            return self.as_dict(row)

    def delete(self, sessions: sessionmaker[Session], profile_id: str) -> None:
        with sessions.begin() as session:
            row = _row(session, self.model, profile_id, self.label)
            self._refuse_in_use(session, profile_id)
            session.delete(row)

    def _refuse_in_use(self, session: Session, profile_id: str) -> None:
        if _count(session, self.used_by, profile_id):
            raise Conflict(f"{self.label} {profile_id} is in use and cannot be modified.")


FLAVOR_PROFILES = _ProfileKind(models.FlavorProfile, "Flavor profile", "flavor_data",
                               flavors.validate_flavor_data, models.Flavor.flavor_profile_id)
ZONE_PROFILES = _ProfileKind(
    models.AvailabilityZoneProfile, "Availability Zone Profile", "availability_zone_data",
    flavors.validate_zone_data, models.AvailabilityZone.availability_zone_profile_id)

flavor_profile_dict = FLAVOR_PROFILES.as_dict
list_flavor_profiles = FLAVOR_PROFILES.list
get_flavor_profile = FLAVOR_PROFILES.get
update_flavor_profile = FLAVOR_PROFILES.update
delete_flavor_profile = FLAVOR_PROFILES.delete
zone_profile_dict = ZONE_PROFILES.as_dict
list_zone_profiles = ZONE_PROFILES.list
get_zone_profile = ZONE_PROFILES.get
update_zone_profile = ZONE_PROFILES.update
delete_zone_profile = ZONE_PROFILES.delete


# -- flavors ---------------------------------------------------------------------------

def flavor_dict(row: models.Flavor) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description or "",
            "enabled": row.enabled, "flavor_profile_id": row.flavor_profile_id}


def list_flavors(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    with sessions() as session:
        return [flavor_dict(r) for r in session.scalars(
            select(models.Flavor).order_by(models.Flavor.created_at))]


def get_flavor(sessions: sessionmaker[Session], flavor_id: str) -> dict[str, Any]:
    with sessions() as session:
        return flavor_dict(_row(session, models.Flavor, flavor_id, "Flavor"))


def update_flavor(sessions: sessionmaker[Session], flavor_id: str,
                  **changes: Any) -> dict[str, Any]:
    with sessions.begin() as session:
        row = _row(session, models.Flavor, flavor_id, "Flavor")
        for key in ("name", "description", "enabled"):
            if key in changes:
                setattr(row, key, changes[key])
        session.flush()
        return flavor_dict(row)


def delete_flavor(sessions: sessionmaker[Session], flavor_id: str) -> None:
    with sessions.begin() as session:
        row = _row(session, models.Flavor, flavor_id, "Flavor")
        if _count(session, models.LoadBalancer.flavor_id, flavor_id):
            raise Conflict(f"Flavor {flavor_id} is in use and cannot be modified.")
        session.delete(row)


# -- availability zones ----------------------------------------------------------------

def zone_dict(row: models.AvailabilityZone) -> dict[str, Any]:
    return {"name": row.name, "description": row.description or "", "enabled": row.enabled,
            "availability_zone_profile_id": row.availability_zone_profile_id}


def list_zones(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    with sessions() as session:
        return [zone_dict(r) for r in session.scalars(
            select(models.AvailabilityZone).order_by(models.AvailabilityZone.name))]


def get_zone(sessions: sessionmaker[Session], name: str) -> dict[str, Any]:
    with sessions() as session:
        return zone_dict(_row(session, models.AvailabilityZone, name, "Availability Zone"))


def update_zone(sessions: sessionmaker[Session], name: str, **changes: Any) -> dict[str, Any]:
    with sessions.begin() as session:
        row = _row(session, models.AvailabilityZone, name, "Availability Zone")
        for key in ("description", "enabled"):
            if key in changes:
                setattr(row, key, changes[key])
        session.flush()
        return zone_dict(row)


def delete_zone(sessions: sessionmaker[Session], name: str) -> None:
    with sessions.begin() as session:
        row = _row(session, models.AvailabilityZone, name, "Availability Zone")
        if _count(session, models.LoadBalancer.availability_zone, name):
            raise Conflict(f"Availability Zone {name} is in use and cannot be modified.")
        session.delete(row)
