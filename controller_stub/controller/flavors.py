"""Flavor and availability-zone capabilities (Octavia's amphora provider keys).

A flavor profile's ``flavor_data`` may set only the keys below; each is
validated with a whole-string match or a range before it is stored, and the
resolved set is copied onto the LB at create time (later profile edits do not
change a running LB, as in Octavia).
"""

from __future__ import annotations

import re
from typing import Any

from controller_stub.controller.constants import TOPOLOGIES
from controller_stub.controller.errors import InvalidRequest

_NAME_RE = re.compile(r"[A-Za-z0-9._:-]{1,255}")
_META_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{1,255}")

FLAVOR_KEYS: dict[str, str] = {
    "loadbalancer_topology": "SINGLE or ACTIVE_STANDBY",
    "amp_image_tag": "Glance tag of the amphora image",
    "compute_flavor": "compute (Nova) flavor of the amphorae",
    "availability_zone": "availability zone of the amphorae",
    "amp_boot_network": "management network of the amphorae",
    "compute_metadata": "JSON object of string metadata for the compute instances",
    "haproxy_threads": "HAProxy thread count (1..64)",
    "vrrp_advert_int": "VRRP advertisement interval in seconds (1..255)",
}
ZONE_KEYS: dict[str, str] = {
    "compute_zone": "the compute service's zone",
    "management_network": "management network in this zone",
    "valid_vip_networks": "list of VIP networks allowed in this zone",
}
DEFAULTS: dict[str, Any] = {"loadbalancer_topology": "SINGLE", "amp_image_tag": "amphora",
                            "amp_boot_network": "mgmt"}


def _name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidRequest(f"{key}: must be 1-255 characters of A-Z a-z 0-9 . _ : -")
    return value


def _int(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(f"{key}: must be an integer {low}..{high}")
    return value


def validate_flavor_data(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidRequest("flavor_data: must be a JSON object")
    unknown = sorted(set(data) - set(FLAVOR_KEYS))
    if unknown:
        raise InvalidRequest(f"flavor_data: unknown key(s) {', '.join(unknown)}; "
                             f"known: {', '.join(FLAVOR_KEYS)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "loadbalancer_topology":
            if value not in TOPOLOGIES:
                raise InvalidRequest(f"{key}: must be one of {', '.join(TOPOLOGIES)}")
            out[key] = value
        elif key == "haproxy_threads":
            out[key] = _int(key, value, 1, 64)
        elif key == "vrrp_advert_int":
            out[key] = _int(key, value, 1, 255)
        elif key == "compute_metadata":
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and _META_KEY_RE.fullmatch(k) and isinstance(v, str)
                    and len(v) <= 255 and "\n" not in v for k, v in value.items()):
                raise InvalidRequest(f"{key}: must map names to strings (<= 255, one line)")
            out[key] = dict(value)
        else:
            out[key] = _name(key, value)
    return out


def validate_zone_data(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidRequest("availability_zone_data: must be a JSON object")
    unknown = sorted(set(data) - set(ZONE_KEYS))
    if unknown:
        raise InvalidRequest(f"availability_zone_data: unknown key(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "valid_vip_networks":
            if not isinstance(value, list):
                raise InvalidRequest(f"{key}: must be a list")
            out[key] = [_name(key, v) for v in value]
        else:
            out[key] = _name(key, value)
    return out


def resolve(flavor_data: dict[str, Any] | None) -> dict[str, Any]:
    return {**DEFAULTS, **(flavor_data or {})}
