"""Amphora images in Glance: upload with manifest properties, list, pick the newest per tag.

The controller chooses an image per flavor by tag and checks what it can do
(HAProxy/OpenSSL/keepalived versions) from the image's properties before it
boots one, so the properties are exactly the build manifest's facts. Talks to
the Glance v2 API through openstacksdk with the operator's credentials
(``OS_CLOUD``/clouds.yaml or ``OS_*`` variables), or to a Glance without
Keystone when given an endpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AMPHORA_TAG = "amphora"

# Glance property -> manifest key. Every one is required in a manifest.
MANIFEST_PROPERTIES: dict[str, str] = {
    "amphora_agent_version": "amphora_agent_version",
    "haproxy_version": "haproxy_version",
    "openssl_version": "openssl_version",
    "keepalived_version": "keepalived_version",
    "os_distro": "os_distro",
    "os_version": "os_version",
    "architecture": "architecture",
    "amphora_build_id": "build_id",
}
# Recorded too when the manifest has them.
OPTIONAL_PROPERTIES: dict[str, str] = {
    "amphora_agent_git_revision": "amphora_agent_git_revision",
    "amphora_build_time": "build_time",
    "kernel_version": "kernel_version",
    "os_release": "os_release",
    "ipvsadm_version": "ipvsadm_version",
    # what ``haproxy -vv`` says (the capability check reads QUIC, PROMEX, services)
    "haproxy_build_options": "haproxy_build_options",
    "haproxy_services": "haproxy_services",
    "haproxy_openssl_version": "haproxy_openssl_version",
}
# Hints to Nova/libvirt for running the amphora well (docs/image.md says why each helps):
# paravirtual disk and NIC, one NIC queue pair per vCPU for HAProxy's threads, and a
# virtio RNG so TLS keys made at boot do not wait on entropy.
PERFORMANCE_PROPERTIES: dict[str, str] = {
    "hw_disk_bus": "virtio",
    "hw_vif_model": "virtio",
    "hw_vif_multiqueue_enabled": "true",
    "hw_rng_model": "virtio",
}
GUEST_AGENT_PROPERTY = "hw_qemu_guest_agent"  # "yes" only when the image has the agent
AMPHORA_PROPERTIES = (*MANIFEST_PROPERTIES, *OPTIONAL_PROPERTIES, *PERFORMANCE_PROPERTIES,
                      GUEST_AGENT_PROPERTY)

# Image file extension -> (disk_format, container_format).
FORMATS: dict[str, tuple[str, str]] = {
    ".qcow2": ("qcow2", "bare"),
    ".raw": ("raw", "bare"),
    ".img": ("raw", "bare"),
    ".tar": ("raw", "compressed"),
}
_TAG_MAX = 255


class ImageError(Exception):
    """An image operation failed; the message says what and why, in one line."""


class GlanceUnavailable(ImageError):
    """Glance could not be reached or refused the request."""


@dataclass(frozen=True)
class ImageInfo:
    id: str
    name: str
    status: str
    created_at: str
    owner: str | None
    tags: tuple[str, ...]
    disk_format: str | None
    size: int | None
    properties: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status,
                "created_at": self.created_at, "owner": self.owner, "tags": list(self.tags),
                "disk_format": self.disk_format, "size": self.size,
                "properties": dict(self.properties)}


# --- manifest ----------------------------------------------------------------

def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a build manifest, refusing one that lacks a property Glance needs."""
    try:
        manifest = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ImageError(f"cannot read manifest {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ImageError(f"manifest {path} is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ImageError(f"manifest {path} is not a JSON object")
    properties_from_manifest(manifest)
    return manifest


def properties_from_manifest(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Glance properties for an image built with this manifest (all strings)."""
    missing = [key for key in MANIFEST_PROPERTIES.values()
               if not isinstance(manifest.get(key), str | int) or manifest.get(key) == ""]
    if missing:
        raise ImageError("manifest lacks " + ", ".join(sorted(missing)))
    props = {prop: str(manifest[key]) for prop, key in MANIFEST_PROPERTIES.items()}
    for prop, key in OPTIONAL_PROPERTIES.items():
        value = manifest.get(key)
        if isinstance(value, str | int) and value != "":
            props[prop] = str(value)
    props.update(PERFORMANCE_PROPERTIES)
    if manifest.get("qemu_guest_agent_version"):
        props[GUEST_AGENT_PROPERTY] = "yes"
    return props


def default_manifest_path(image: Path) -> Path:
    return image.with_name(image.name + ".manifest.json")


def image_formats(image: Path) -> tuple[str, str]:
    try:
        return FORMATS[image.suffix]
    except KeyError:
        raise ImageError(f"cannot tell the disk format of {image.name}: use one of "
                         f"{', '.join(sorted(FORMATS))}") from None


def verify_checksum(image: Path) -> str | None:
    """Check ``<image>.sha256`` when present; return the digest checked, or None."""
    sums = image.with_name(image.name + ".sha256")
    if not sums.exists():
        return None
    expected = sums.read_text().split()[0].lower() if sums.read_text().split() else ""
    digest = hashlib.sha256()
    with open(image, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ImageError(f"{image.name} does not match {sums.name}: the image is damaged")
    return expected


def validate_tags(tags: Iterable[str]) -> list[str]:
    out: list[str] = [AMPHORA_TAG]
    for tag in tags:
        if not tag or len(tag) > _TAG_MAX or any(c in tag for c in ",/\n\r\t"):
            raise ImageError(f"invalid tag {tag!r}: 1-{_TAG_MAX} characters, no ',' or '/'")
        if tag not in out:
            out.append(tag)
    return out


# --- Glance connection ----------------------------------------------------------

def connect(cloud: str | None = None, endpoint: str | None = None) -> Any:
    """An openstacksdk connection: a Keystone-less Glance at ``endpoint``, else ``cloud``/env."""
    import openstack  # imported here: only the image commands need openstacksdk

    try:
        if endpoint:
            return openstack.connect(load_yaml_config=False, load_envvars=False,
                                     auth_type="none", auth={"endpoint": endpoint.rstrip("/")})
        return openstack.connect(cloud=cloud)
    except Exception as exc:
        raise GlanceUnavailable(f"cannot set up the OpenStack connection: {exc}") from exc


def _glance_call(what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an SDK call, turning transport and HTTP errors into one-line GlanceUnavailable."""
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as sdk_exc

    try:
        return func(*args, **kwargs)
    except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.DiscoveryFailure,
            ks_exc.EndpointNotFound, ks_exc.UnknownConnectionError) as exc:
        raise GlanceUnavailable(f"cannot reach Glance to {what}: {_short(exc)}") from exc
    except sdk_exc.HttpException as exc:
        code = getattr(exc, "status_code", None)
        raise GlanceUnavailable(f"Glance refused to {what} (HTTP {code}): {_short(exc)}") from exc
    except sdk_exc.SDKException as exc:
        raise GlanceUnavailable(f"Glance failed to {what}: {_short(exc)}") from exc
    except ks_exc.ClientException as exc:
        raise GlanceUnavailable(f"Glance failed to {what}: {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


def _info(image: Any) -> ImageInfo:
    raw = image.to_dict() if hasattr(image, "to_dict") else dict(image)
    props = dict(raw.get("properties") or {})
    for key in AMPHORA_PROPERTIES:
        if key in raw and raw[key] is not None:
            props.setdefault(key, raw[key])
    # openstacksdk names this one is_hw_vif_multiqueue_enabled and makes it a bool
    multiqueue = raw.get("is_hw_vif_multiqueue_enabled")
    if multiqueue is not None:
        props.setdefault("hw_vif_multiqueue_enabled", str(multiqueue).lower())
    if raw.get("architecture"):
        props.setdefault("architecture", raw["architecture"])
    if raw.get("os_distro"):
        props.setdefault("os_distro", raw["os_distro"])
    if raw.get("os_version"):
        props.setdefault("os_version", raw["os_version"])
    amphora_props = {k: str(v) for k, v in props.items() if k in AMPHORA_PROPERTIES}
    return ImageInfo(
        id=str(raw.get("id")), name=str(raw.get("name") or ""), status=str(raw.get("status")),
        created_at=str(raw.get("created_at") or ""), owner=raw.get("owner_id") or raw.get("owner"),
        tags=tuple(raw.get("tags") or ()), disk_format=raw.get("disk_format"),
        size=raw.get("size"), properties=amphora_props)


# --- operations -------------------------------------------------------------------

def upload_image(conn: Any, image: str | os.PathLike[str], *,
                 manifest: str | os.PathLike[str] | None = None,
                 tags: Sequence[str] = (), name: str | None = None,
                 visibility: str = "private", owner: str | None = None) -> ImageInfo:
    """Upload an image with its manifest's properties and the ``amphora`` tag; wait until active."""
    path = Path(image)
    if not path.is_file():
        raise ImageError(f"no image file {path}")
    disk_format, container_format = image_formats(path)
    manifest_path = Path(manifest) if manifest else default_manifest_path(path)
    props = properties_from_manifest(load_manifest(manifest_path))
    all_tags = validate_tags(tags)
    verify_checksum(path)
    if visibility not in ("private", "shared", "community", "public"):
        raise ImageError(f"invalid visibility {visibility!r}")
    image_name = name or f"{path.stem}-{props['amphora_build_id'][:8]}"
    attrs: dict[str, Any] = {"name": image_name, "disk_format": disk_format,
                             "container_format": container_format, "visibility": visibility,
                             "tags": all_tags, **props}
    if owner:
        attrs["owner"] = owner
    created = _glance_call("create the image record", conn.image.create_image, **attrs)
    try:
        with open(path, "rb") as data:
            _upload_data(conn, created, data)
        final = _glance_call("read the image back", conn.image.get_image, created.id)
    except BaseException:
        try:
            conn.image.delete_image(created.id, ignore_missing=True)
        except Exception:  # noqa: S110 - best effort: the upload error matters more
            pass
        raise
    info = _info(final)
    if info.status != "active":
        raise ImageError(f"image {info.id} is {info.status!r} after upload, not 'active'")
    return info


def _upload_data(conn: Any, created: Any, data: Any) -> None:
    """PUT the image file (Glance v2 direct upload), streaming from ``data``."""
    from openstack import exceptions as sdk_exc

    response = _glance_call("upload the image data", created.upload, conn.image, data=data)
    _glance_call("upload the image data", sdk_exc.raise_from_response, response)


def list_images(conn: Any, tag: str = AMPHORA_TAG, *, owner: str | None = None,
                status: str | None = None) -> list[ImageInfo]:
    """Images with ``tag`` (optionally of one owner / in one status), newest first."""
    filters: dict[str, Any] = {"tag": [tag]}
    if owner:
        filters["owner"] = owner
    if status:
        filters["status"] = status
    images = _glance_call("list images", lambda: list(conn.image.images(**filters)))
    infos = [_info(image) for image in images]
    return sorted(infos, key=_newest_key, reverse=True)


def _newest_key(info: ImageInfo) -> tuple[str, str, str]:
    # Glance's created_at has one-second resolution; the build time breaks ties.
    return (info.created_at, info.properties.get("amphora_build_time", ""), info.id)


def select_image(conn: Any, tag: str, *, owner: str | None = None) -> ImageInfo:
    """The newest active image carrying ``tag`` (and owned by ``owner``, if given)."""
    candidates = [i for i in list_images(conn, tag, owner=owner, status="active")
                  if i.status == "active" and (owner is None or i.owner == owner)]
    if not candidates:
        who = f" owned by {owner}" if owner else ""
        raise ImageError(f"no active image tagged {tag!r}{who} in Glance")
    return candidates[0]
