"""Which image an amphora boots and what it can do.

The image is the newest active Glance image carrying the flavor's tag
(:func:`controller_stub.images.select_image`); its version properties are
cached in the state store (``image`` table) for ``cache_seconds``. In the
embedded default there is no Glance: the "image" is this host's install, and
its versions are detected once (:meth:`haproxy_templates.Target.detect`).
"""

from __future__ import annotations

import datetime
import threading
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from controller_stub.controller import models
from haproxy_templates import Target


class ImageSource(Protocol):
    def select(self, tag: str) -> tuple[str, dict[str, str]]:
        """(image id, version properties) of the image to boot for ``tag``."""


class LocalImage:
    """The local install as the only image, whatever the tag."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._properties: dict[str, str] | None = None

    def select(self, tag: str) -> tuple[str, dict[str, str]]:
        with self._lock:
            if self._properties is None:
                target = Target.detect()
                self._properties = {
                    "haproxy_version": target.haproxy_version,
                    "openssl_version": target.openssl_version,
                    "haproxy_services": " ".join(sorted(target.services or ())),
                    "haproxy_build_options": " ".join(sorted(target.build or ())),
                }
        return "local", dict(self._properties)


class StaticImage:
    """A fixed image description (tests, or an operator pinning versions)."""

    def __init__(self, image_id: str, properties: dict[str, str]) -> None:
        self.image_id, self.properties = image_id, dict(properties)

    def select(self, tag: str) -> tuple[str, dict[str, str]]:
        return self.image_id, dict(self.properties)


class GlanceImages:
    """Newest active image by tag, its properties cached in the state store."""

    def __init__(self, connection: Any, sessions: sessionmaker[Session], *,
                 cache_seconds: float = 300.0, owner: str | None = None) -> None:
        self.connection, self.sessions = connection, sessions
        self.cache_seconds, self.owner = cache_seconds, owner

    def select(self, tag: str) -> tuple[str, dict[str, str]]:
        from controller_stub.images import select_image

        now = models.utcnow()
        with self.sessions.begin() as session:
            cached = session.query(models.Image).filter_by(tag=tag).order_by(
                models.Image.fetched_at.desc()).first()
            if cached is not None and (now - cached.fetched_at) < datetime.timedelta(
                    seconds=self.cache_seconds):
                return cached.id, dict(cached.properties)
        info = select_image(self.connection, tag, owner=self.owner)
        with self.sessions.begin() as session:
            row = session.get(models.Image, info.id) or models.Image(id=info.id, tag=tag)
            row.name, row.properties, row.fetched_at = info.name, dict(info.properties), now
            session.add(row)
        return info.id, dict(info.properties)


def target_of(properties: dict[str, str]) -> Target:
    """What the renderer needs to know about an image to check a request against it."""
    services = properties.get("haproxy_services")
    build = properties.get("haproxy_build_options")
    return Target(haproxy_version=properties["haproxy_version"],
                  openssl_version=properties.get("openssl_version", "3.0.0"),
                  services=frozenset(services.split()) if services is not None else None,
                  build=frozenset(build.split()) if build is not None else None)
