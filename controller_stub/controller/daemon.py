"""``amphora-controller --config-file F``: workers and housekeeping until SIGTERM.

On SIGTERM (or SIGINT) the workers stop claiming flows; a step already
running finishes and its flow stops at the next step boundary with its lease
released, so it resumes on the next start or on another controller.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from controller_stub.controller import config as config_mod
from controller_stub.controller import db, notifications, statistics
from controller_stub.controller.api import Controller
from controller_stub.controller.certificates import LocalCertificateStore
from controller_stub.controller.compute import make_driver
from controller_stub.controller.health import HealthManager, HealthSettings
from controller_stub.controller.housekeeping import Housekeeper
from controller_stub.controller.imaging import GlanceImages, ImageSource, LocalImage
from controller_stub.controller.networks import NetworkRegistry
from controller_stub.controller.worker import Workers

LOG = logging.getLogger("amphora-controller")


class Service:
    """Everything one controller process runs; also used in-process by tests and the demo."""

    def __init__(self, cfg: config_mod.ControllerConfig) -> None:
        self.cfg = cfg
        self.sessions = db.open_store(cfg.database_url)
        self.notifier = notifications.from_options(cfg.notifications)
        notifications.install(self.sessions, self.notifier)
        self.statistics = statistics.from_options(cfg.statistics)
        self.compute = make_driver(cfg.compute_driver, {"workdir": cfg.compute_workdir,
                                                            "zones": cfg.compute_zones,
                                                            "agent_venv": cfg.compute_agent_venv,
                                                            "agent_kind": cfg.compute_agent_kind,
                                                            **cfg.openstack})
        if hasattr(self.compute, "cert_validity"):
            self.compute.cert_validity = cfg.housekeeping.cert_validity
        self.certificates = LocalCertificateStore(cfg.certificate_directory)
        images: ImageSource
        if cfg.image_source == "glance":
            from controller_stub.images import connect

            images = GlanceImages(connect(cfg.glance_cloud), self.sessions,
                                  cache_seconds=cfg.image_cache_seconds)
        else:
            images = LocalImage()
        self.workers = Workers(self.sessions, self.compute, owner=cfg.controller_id,
                               budget=cfg.budget, count=cfg.workers,
                               lease_seconds=cfg.lease_seconds, poll_seconds=cfg.poll_seconds,
                               certificates=self.certificates,
                               keep_failed_amphorae=cfg.keep_failed_amphorae,
                               connection_logging=cfg.connection_logging)
        self.api = Controller(self.sessions, images, on_change=self.workers.wakeup.set,
                              quota_defaults=cfg.quota_defaults)
        self.stopping = threading.Event()
        self.housekeeper = Housekeeper(self.sessions, self.compute, cfg.housekeeping,
                                       cfg.budget)
        self._housekeeper: threading.Thread | None = None
        self.health: HealthManager | None = None
        if cfg.health.enabled:
            self.health = self._health_manager(cfg.health)
        self.networks = NetworkRegistry.of_compute(self.compute)
        self.api_server: Any = None
        if cfg.api.enabled:
            self.api_server = self._api_server()

    def _api_server(self) -> Any:
        """The REST API over this service's engine (docs/api.md); binds on start."""
        from controller_stub.controller.rest import auth, create_app
        from controller_stub.controller.rest.server import ApiServer

        settings = self.cfg.api
        tokens = (auth.load_tokens(settings.static_tokens_file)
                  if settings.auth_strategy == "static" and settings.static_tokens_file
                  else None)
        app = create_app(self.api, self.networks, base_uri=settings.base_uri)
        app.wsgi_app = auth.wrap(app.wsgi_app, settings.auth_strategy,  # type: ignore[method-assign]
                                 default_project=settings.default_project, tokens=tokens,
                                 keystone_options=settings.keystone_authtoken)
        return ApiServer(app, settings.bind_host, settings.bind_port, settings.threads)

    @property
    def api_address(self) -> tuple[str, int]:
        """(host, port) the API listens on (after start)."""
        if self.api_server is None:
            raise RuntimeError("[api] enabled = false")
        return self.api_server.address

    def _health_manager(self, settings: HealthSettings) -> HealthManager:
        """Listen where amphorae reach us: on the fabric, the management gateway
        inside the fabric namespace; amphorae booted from now on send there."""
        namespace, address = None, settings.bind_ip
        endpoint = getattr(self.compute, "heartbeat_endpoint", None)
        if not address:
            if endpoint is None:
                raise ValueError("[health_manager] bind_ip: needed with this compute driver")
            namespace, address = endpoint()
        manager = HealthManager(self.sessions, settings, namespace=namespace, bind_ip=address,
                                start_failover=self.api.start_failover,
                                statistics=self.statistics)
        return manager

    def _housekeeping(self) -> None:
        while not self.stopping.wait(self.cfg.housekeeping.interval):
            self.housekeeper.run_once()  # each part logs and survives its own failure

    def start(self) -> Service:
        if self.health is not None:
            self.health.start()
            host, port = self.health.address
            if hasattr(self.compute, "heartbeat"):
                self.compute.heartbeat = (host, port, self.cfg.health.master_key,
                                          self.cfg.health.heartbeat_interval)
        self.workers.start()
        if self.api_server is not None:
            self.api_server.start()
        self._housekeeper = threading.Thread(target=self._housekeeping, daemon=True,
                                             name="controller-housekeeping")
        self._housekeeper.start()
        LOG.info("controller %s started: %d workers, database %s", self.cfg.controller_id,
                 self.cfg.workers, self.sessions.kw["bind"].url.render_as_string(
                     hide_password=True))
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.api_server is not None:
            self.api_server.stop()
        self.workers.stop()
        self.workers.release_own()
        if self.health is not None:
            self.health.stop()
        if self._housekeeper is not None:
            self._housekeeper.join(5)
        self.notifier.close()
        self.statistics.close()
        self.sessions.kw["bind"].dispose()

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amphora-controller", description=__doc__)
    parser.add_argument("--config-file", required=True)
    args = parser.parse_args(argv)
    try:
        cfg = config_mod.load(args.config_file)
    except (OSError, ValueError) as exc:
        print(f"amphora-controller: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        service = Service(cfg)
    except (OSError, ValueError) as exc:
        print(f"amphora-controller: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        LOG.info("signal %d: shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    done.wait()
    service.stop()
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
