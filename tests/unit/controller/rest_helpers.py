"""A REST app over a SQLite engine with no workers, for the unit tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import text, update

from controller_stub.compute.local import DEFAULT_NETWORKS
from controller_stub.controller import db, models
from controller_stub.controller.api import Controller
from controller_stub.controller.imaging import StaticImage
from controller_stub.controller.networks import NetworkRegistry
from controller_stub.controller.rest import auth, create_app

REGISTRY = NetworkRegistry(DEFAULT_NETWORKS)
VIP_NETWORK = REGISTRY.by_name("vip").id  # type: ignore[union-attr]
MEMBER_SUBNET = next(s.id for s in REGISTRY.subnets.values()
                     if s.network_name == "member" and s.ip_version == 4)


class Api:
    def __init__(self, tmp_path: Path,
                 middleware: Callable[[auth.WsgiApp], auth.WsgiApp] | None = None,
                 base_uri: str | None = None) -> None:
        self.sessions = db.open_store(f"sqlite:///{tmp_path}/state.db")
        self.controller = Controller(self.sessions, StaticImage(
            "img-26", {"haproxy_version": "2.6.12", "openssl_version": "3.0.11"}))
        app = create_app(self.controller, REGISTRY, base_uri=base_uri)
        wrap = middleware or (lambda inner: auth.noauth(inner, "p1"))
        app.wsgi_app = wrap(app.wsgi_app)  # type: ignore[method-assign]
        self.client: FlaskClient = app.test_client()
        self.app = app

    def settle(self) -> None:
        """What a worker's finished flow leaves: everything ACTIVE."""
        with self.sessions.begin() as session:
            for model in (models.LoadBalancer, models.Listener, models.Pool, models.Member,
                          models.HealthMonitor):
                session.execute(update(model).values(provisioning_status="ACTIVE"))

    def lb(self, name: str = "lb", **extra: Any) -> dict[str, Any]:
        r = self.client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
            "name": name, "vip_network_id": VIP_NETWORK, **extra}})
        assert r.status_code == 201, r.json
        return r.json["loadbalancer"]


def check_tags_after_upgrade(url: str) -> None:
    """A store with a load balancer from before tags (revision 0004) upgraded to head:
    the old row reads as untagged, and tags set later are stored and replaced."""
    engine = db.make_engine(url)
    db.upgrade(engine, "0004")
    old = "00000000-0000-4000-8000-0000000000aa"
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO image (id, tag, properties, fetched_at) VALUES ('img-26', 'amphora', "
            "'{\"haproxy_version\": \"2.6.12\", \"openssl_version\": \"3.0.11\"}', "
            "'2026-01-01 00:00:00')"))
        conn.execute(text(
            "INSERT INTO load_balancer (id, provider, topology, image_id, flavor_data, "
            "provisioning_status, operating_status, admin_state_up, created_at) VALUES "
            f"('{old}', 'amphora', 'SINGLE', 'img-26', '{{}}', 'ACTIVE', 'ONLINE', true, "
            "'2026-01-01 00:00:00')"))
    engine.dispose()
    controller = Controller(db.open_store(url), StaticImage(
        "img-26", {"haproxy_version": "2.6.12", "openssl_version": "3.0.11"}))
    assert controller.get_load_balancer(old)["tags"] == []
    assert controller.update_load_balancer(old, tags=["a", "b"])["tags"] == ["a", "b"]
    assert controller.get_load_balancer(old)["tags"] == ["a", "b"]
    new = controller.create_load_balancer(tags=["c"])
    assert [lb["tags"] for lb in controller.list_objects("loadbalancer", id=new["id"])] == [
        ["c"]]
