"""``/lbaas/flavors``, ``/lbaas/flavorprofiles``, ``/lbaas/availabilityzones``,
``/lbaas/availabilityzoneprofiles`` and ``/lbaas/providers``.

Profiles are the operator's (admin only, as Octavia's default policy);
everyone may read flavors and zones. A profile's data travels as a JSON
string, as in Octavia.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request
from pydantic import Field
from sqlalchemy.exc import IntegrityError

from controller_stub.controller import catalog
from controller_stub.controller.rest import common, context
from controller_stub.controller.rest.errors import FORBIDDEN, ApiError
from controller_stub.controller.rest.schema import (
    LIST_QUERY,
    Body,
    Name,
    Out,
    Uuid,
    parse,
    route,
)

blueprint = Blueprint("catalog", __name__)
Data = Field(max_length=4096)


def _admin() -> None:
    if not context.current().is_admin:
        raise ApiError(403, FORBIDDEN)


def _provider_name(name: str) -> str:
    if name not in catalog.PROVIDERS:
        raise ApiError(400, f"Provider '{name}' is not enabled.")
    return name


def _data(raw: str, option: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, f"{raw} is not a valid option for {option}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"{raw} is not a valid option for {option}")
    return data


def _unique(create: Any, what: str, name: str) -> Any:
    """Create, answering Octavia's 409 for a name already taken."""
    try:
        return create()
    except IntegrityError:
        raise ApiError(409, f"A {what} of {name} already exists.") from None


# -- flavor profiles -----------------------------------------------------------------

class FlavorProfilePOST(Body):
    name: Name
    provider_name: Name
    flavor_data: str = Data


class FlavorProfilePUT(Body):
    name: Name | None = None
    provider_name: Name | None = None
    flavor_data: str | None = Field(None, max_length=4096)


class FlavorProfileResponse(Out):
    id: str
    name: str
    provider_name: str
    flavor_data: str


def _profile_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "flavor_data": json.dumps(row["flavor_data"])}


@route(blueprint, "/lbaas/flavorprofiles", "GET", query=LIST_QUERY,
       response=("flavorprofiles", FlavorProfileResponse, True))
def list_flavorprofiles() -> Response:
    """List flavor profiles."""
    _admin()
    rows = [_profile_out(r) for r in catalog.list_flavor_profiles(common.engine().sessions)]
    return common.answer_list("flavorprofiles", FlavorProfileResponse, rows)


@route(blueprint, "/lbaas/flavorprofiles", "POST", status=201,
       body=("flavorprofile", FlavorProfilePOST),
       response=("flavorprofile", FlavorProfileResponse, False))
def create_flavorprofile() -> Response:
    """Create a flavor profile."""
    body = parse(FlavorProfilePOST, "flavorprofile")
    assert isinstance(body, FlavorProfilePOST)
    _admin()
    provider = _provider_name(body.provider_name)
    data = _data(body.flavor_data, "flavor data")
    row = _unique(lambda: common.engine().create_flavor_profile(body.name, data, provider),
                  "flavor profile", body.name)
    return common.answer("flavorprofile", FlavorProfileResponse, _profile_out(row), 201)


@route(blueprint, "/lbaas/flavorprofiles/<profile_id>", "GET", query=("fields",),
       response=("flavorprofile", FlavorProfileResponse, False))
def show_flavorprofile(profile_id: str) -> Response:
    """Show a flavor profile."""
    _admin()
    row = catalog.get_flavor_profile(common.engine().sessions, profile_id)
    return common.answer("flavorprofile", FlavorProfileResponse, _profile_out(row),
                         fields=True)


@route(blueprint, "/lbaas/flavorprofiles/<profile_id>", "PUT",
       body=("flavorprofile", FlavorProfilePUT),
       response=("flavorprofile", FlavorProfileResponse, False))
def update_flavorprofile(profile_id: str) -> Response:
    """Update a flavor profile."""
    body = parse(FlavorProfilePUT, "flavorprofile")
    _admin()
    changes = body.sent()
    for key in ("name", "provider_name", "flavor_data"):
        if key in changes and changes[key] is None:
            raise ApiError(400, f"None is not a valid option for {key}")
    if "flavor_data" in changes:
        changes["flavor_data"] = _data(changes["flavor_data"], "flavor data")
    row = _unique(lambda: catalog.update_flavor_profile(common.engine().sessions, profile_id,
                                                        **changes),
                  "flavor profile", changes.get("name", ""))
    return common.answer("flavorprofile", FlavorProfileResponse, _profile_out(row))


@route(blueprint, "/lbaas/flavorprofiles/<profile_id>", "DELETE", status=204)
def delete_flavorprofile(profile_id: str) -> Response:
    """Delete a flavor profile."""
    _admin()
    catalog.delete_flavor_profile(common.engine().sessions, profile_id)
    return common.no_content()


# -- flavors --------------------------------------------------------------------------

class FlavorPOST(Body):
    name: Name
    description: Name | None = None
    enabled: bool = True
    flavor_profile_id: Uuid


class FlavorPUT(Body):
    name: Name | None = None
    description: Name | None = None
    enabled: bool | None = None


class FlavorResponse(Out):
    id: str
    name: str
    description: str | None = None
    enabled: bool
    flavor_profile_id: str


@route(blueprint, "/lbaas/flavors", "GET", query=LIST_QUERY,
       response=("flavors", FlavorResponse, True))
def list_flavors() -> Response:
    """List flavors."""
    context.current()
    return common.answer_list("flavors", FlavorResponse,
                              catalog.list_flavors(common.engine().sessions))


@route(blueprint, "/lbaas/flavors", "POST", status=201, body=("flavor", FlavorPOST),
       response=("flavor", FlavorResponse, False))
def create_flavor() -> Response:
    """Create a flavor."""
    body = parse(FlavorPOST, "flavor")
    assert isinstance(body, FlavorPOST)
    _admin()
    row = _unique(lambda: common.engine().create_flavor(
        body.name, body.flavor_profile_id, description=body.description or "",
        enabled=body.enabled), "flavor", body.name)
    return common.answer("flavor", FlavorResponse, row, 201)


@route(blueprint, "/lbaas/flavors/<flavor_id>", "GET", query=("fields",),
       response=("flavor", FlavorResponse, False))
def show_flavor(flavor_id: str) -> Response:
    """Show a flavor."""
    context.current()
    return common.answer("flavor", FlavorResponse,
                         catalog.get_flavor(common.engine().sessions, flavor_id), fields=True)


@route(blueprint, "/lbaas/flavors/<flavor_id>", "PUT", body=("flavor", FlavorPUT),
       response=("flavor", FlavorResponse, False))
def update_flavor(flavor_id: str) -> Response:
    """Update a flavor."""
    body = parse(FlavorPUT, "flavor")
    _admin()
    changes = body.sent()
    row = _unique(lambda: catalog.update_flavor(common.engine().sessions, flavor_id,
                                                **changes), "flavor", changes.get("name", ""))
    return common.answer("flavor", FlavorResponse, row)


@route(blueprint, "/lbaas/flavors/<flavor_id>", "DELETE", status=204)
def delete_flavor(flavor_id: str) -> Response:
    """Delete a flavor."""
    _admin()
    catalog.delete_flavor(common.engine().sessions, flavor_id)
    return common.no_content()


# -- availability zone profiles ------------------------------------------------------

class ZoneProfilePOST(Body):
    name: Name
    provider_name: Name
    availability_zone_data: str = Data


class ZoneProfilePUT(Body):
    name: Name | None = None
    provider_name: Name | None = None
    availability_zone_data: str | None = Field(None, max_length=4096)


class ZoneProfileResponse(Out):
    id: str
    name: str
    provider_name: str
    availability_zone_data: str


def _zone_profile_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "availability_zone_data": json.dumps(row["availability_zone_data"])}


ZP = ("availability_zone_profile", ZoneProfileResponse, False)


@route(blueprint, "/lbaas/availabilityzoneprofiles", "GET", query=LIST_QUERY,
       response=("availability_zone_profiles", ZoneProfileResponse, True))
def list_zoneprofiles() -> Response:
    """List availability zone profiles."""
    _admin()
    rows = [_zone_profile_out(r) for r in catalog.list_zone_profiles(common.engine().sessions)]
    return common.answer_list("availability_zone_profiles", ZoneProfileResponse, rows)


@route(blueprint, "/lbaas/availabilityzoneprofiles", "POST", status=201,
       body=("availability_zone_profile", ZoneProfilePOST), response=ZP)
def create_zoneprofile() -> Response:
    """Create an availability zone profile."""
    body = parse(ZoneProfilePOST, "availability_zone_profile")
    assert isinstance(body, ZoneProfilePOST)
    _admin()
    provider = _provider_name(body.provider_name)
    data = _data(body.availability_zone_data, "availability zone data")
    row = _unique(lambda: common.engine().create_availability_zone_profile(
        body.name, data, provider), "availability zone profile", body.name)
    return common.answer("availability_zone_profile", ZoneProfileResponse,
                         _zone_profile_out(row), 201)


@route(blueprint, "/lbaas/availabilityzoneprofiles/<profile_id>", "GET", query=("fields",),
       response=ZP)
def show_zoneprofile(profile_id: str) -> Response:
    """Show an availability zone profile."""
    _admin()
    row = catalog.get_zone_profile(common.engine().sessions, profile_id)
    return common.answer("availability_zone_profile", ZoneProfileResponse,
                         _zone_profile_out(row), fields=True)


@route(blueprint, "/lbaas/availabilityzoneprofiles/<profile_id>", "PUT",
       body=("availability_zone_profile", ZoneProfilePUT), response=ZP)
def update_zoneprofile(profile_id: str) -> Response:
    """Update an availability zone profile."""
    body = parse(ZoneProfilePUT, "availability_zone_profile")
    _admin()
    changes = body.sent()
    for key in ("name", "provider_name", "availability_zone_data"):
        if key in changes and changes[key] is None:
            raise ApiError(400, f"None is not a valid option for {key}")
    if "availability_zone_data" in changes:
        changes["availability_zone_data"] = _data(changes["availability_zone_data"],
                                                  "availability zone data")
    row = _unique(lambda: catalog.update_zone_profile(common.engine().sessions, profile_id,
                                                      **changes),
                  "availability zone profile", changes.get("name", ""))
    return common.answer("availability_zone_profile", ZoneProfileResponse,
                         _zone_profile_out(row))


@route(blueprint, "/lbaas/availabilityzoneprofiles/<profile_id>", "DELETE", status=204)
def delete_zoneprofile(profile_id: str) -> Response:
    """Delete an availability zone profile."""
    _admin()
    catalog.delete_zone_profile(common.engine().sessions, profile_id)
    return common.no_content()


# -- availability zones ----------------------------------------------------------------

class ZonePOST(Body):
    name: Name
    description: Name | None = None
    enabled: bool = True
    availability_zone_profile_id: Uuid


class ZonePUT(Body):
    description: Name | None = None
    enabled: bool | None = None


class ZoneResponse(Out):
    name: str
    description: str | None = None
    enabled: bool
    availability_zone_profile_id: str


AZ = ("availability_zone", ZoneResponse, False)


@route(blueprint, "/lbaas/availabilityzones", "GET", query=LIST_QUERY,
       response=("availability_zones", ZoneResponse, True))
def list_zones() -> Response:
    """List availability zones."""
    context.current()
    return common.answer_list("availability_zones", ZoneResponse,
                              catalog.list_zones(common.engine().sessions))


@route(blueprint, "/lbaas/availabilityzones", "POST", status=201,
       body=("availability_zone", ZonePOST), response=AZ)
def create_zone() -> Response:
    """Create an availability zone."""
    body = parse(ZonePOST, "availability_zone")
    assert isinstance(body, ZonePOST)
    _admin()
    row = _unique(lambda: common.engine().create_availability_zone(
        body.name, body.availability_zone_profile_id, description=body.description or "",
        enabled=body.enabled), "availability zone", body.name)
    return common.answer("availability_zone", ZoneResponse, row, 201)


@route(blueprint, "/lbaas/availabilityzones/<name>", "GET", query=("fields",), response=AZ)
def show_zone(name: str) -> Response:
    """Show an availability zone."""
    context.current()
    return common.answer("availability_zone", ZoneResponse,
                         catalog.get_zone(common.engine().sessions, name), fields=True)


@route(blueprint, "/lbaas/availabilityzones/<name>", "PUT",
       body=("availability_zone", ZonePUT), response=AZ)
def update_zone(name: str) -> Response:
    """Update an availability zone."""
    body = parse(ZonePUT, "availability_zone")
    _admin()
    return common.answer("availability_zone", ZoneResponse,
                         catalog.update_zone(common.engine().sessions, name, **body.sent()))


@route(blueprint, "/lbaas/availabilityzones/<name>", "DELETE", status=204)
def delete_zone(name: str) -> Response:
    """Delete an availability zone."""
    _admin()
    catalog.delete_zone(common.engine().sessions, name)
    return common.no_content()


# -- providers ---------------------------------------------------------------------------

class ProviderResponse(Out):
    name: str
    description: str


def _capabilities(root: str, rows: list[dict[str, str]]) -> Response:
    for key in ("name", "description"):
        if request.args.get(key):
            rows = [r for r in rows if r[key] == request.args[key]]
    return Response(json.dumps({root: rows}), mimetype="application/json")


def _provider(provider: str) -> None:
    context.current()
    _provider_name(provider)


@route(blueprint, "/lbaas/providers", "GET", query=("fields",),
       response=("providers", ProviderResponse, True))
def list_providers() -> Response:
    """List the enabled provider drivers."""
    context.current()
    return _capabilities("providers", [{"name": k, "description": v}
                                       for k, v in catalog.PROVIDERS.items()])


@route(blueprint, "/lbaas/providers/<provider>/flavor_capabilities", "GET",
       query=("name", "description"),
       response=("flavor_capabilities", ProviderResponse, True))
def flavor_capabilities(provider: str) -> Response:
    """The flavor_data keys a provider accepts."""
    _provider(provider)
    return _capabilities("flavor_capabilities", catalog.flavor_capabilities())


@route(blueprint, "/lbaas/providers/<provider>/availability_zone_capabilities", "GET",
       query=("name", "description"),
       response=("availability_zone_capabilities", ProviderResponse, True))
def zone_capabilities(provider: str) -> Response:
    """The availability_zone_data keys a provider accepts."""
    _provider(provider)
    return _capabilities("availability_zone_capabilities", catalog.zone_capabilities())
