"""The controller's image selection against a real Glance: the newest active
image with the flavor's tag, its version properties cached in the state
store, and a request that image cannot serve refused before any work."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from controller_stub import images
from controller_stub.controller import db, models
from controller_stub.controller.api import Controller
from controller_stub.controller.errors import Unsupported
from controller_stub.controller.imaging import GlanceImages

from .conftest import MakeImage
from .test_glance import _past

MONITORED = {"protocol": "HTTP", "protocol_port": 80, "default_pool": {
    "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
    "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3,
                      "url_path": "/health", "domain_name": "example.org",
                      "http_version": 1.1}}}


def _count(sessions: Any, model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_flavor_tag_selects_newest_image_and_its_versions_gate_requests(
        glance_conn: Any, make_image: MakeImage, tmp_path: Path) -> None:
    tag = f"ctl-{uuid.uuid4().hex[:8]}"
    old = images.upload_image(glance_conn, make_image("old", haproxy_version="2.0.33-1"),
                              tags=[tag])
    sessions = db.open_store(f"sqlite:///{tmp_path}/state.db")
    cached = Controller(sessions, GlanceImages(glance_conn, sessions, cache_seconds=3600))
    profile = cached.create_flavor_profile("tagged", {"amp_image_tag": tag})
    flavor = cached.create_flavor("tagged", profile["id"])

    with pytest.raises(Unsupported) as caught:
        cached.create_load_balancer(flavor_id=flavor["id"], listeners=[MONITORED])
    message = str(caught.value)
    assert old.id in message and "domain_name" in message and "2.2" in message
    for model in (models.LoadBalancer, models.Amphora, models.Flow):
        assert _count(sessions, model) == 0
    with sessions() as session:  # the image's versions are cached
        row = session.get(models.Image, old.id)
        assert row is not None and row.tag == tag
        assert row.properties["haproxy_version"] == "2.0.33-1"

    _past(old.created_at)
    new = images.upload_image(glance_conn, make_image("new", haproxy_version="2.6.12-1"),
                              tags=[tag])
    # within the cache lifetime the cached (old) image still answers
    with pytest.raises(Unsupported):
        cached.create_load_balancer(flavor_id=flavor["id"], listeners=[MONITORED])
    fresh = Controller(sessions, GlanceImages(glance_conn, sessions, cache_seconds=0))
    lb = fresh.create_load_balancer(flavor_id=flavor["id"], listeners=[MONITORED])
    with sessions() as session:
        assert session.get(models.LoadBalancer, lb["id"]).image_id == new.id
