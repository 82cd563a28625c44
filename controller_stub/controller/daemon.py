"""``amphora-controller --config-file F``: workers and housekeeping until SIGTERM.

On SIGTERM (or SIGINT) the workers stop claiming flows; a step already
running finishes and its flow stops at the next step boundary with its lease
released, so it resumes on the next start or on another controller.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import signal
import sys
import threading
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from controller_stub.controller import config as config_mod
from controller_stub.controller import db, models, notifications, statistics
from controller_stub.controller.api import Controller
from controller_stub.controller.certificates import LocalCertificateStore
from controller_stub.controller.compute import make_driver
from controller_stub.controller.constants import FLOW_DONE, FLOW_FAILED
from controller_stub.controller.health import HealthManager, HealthSettings
from controller_stub.controller.imaging import GlanceImages, ImageSource, LocalImage
from controller_stub.controller.worker import Workers

LOG = logging.getLogger("amphora-controller")


def purge_flows(sessions: sessionmaker[Session], older_than: float) -> int:
    """Delete finished flows (and their steps) older than ``older_than`` seconds."""
    cutoff = models.utcnow() - datetime.timedelta(seconds=older_than)
    with sessions.begin() as session:
        old = select(models.Flow.id).where(models.Flow.state.in_([FLOW_DONE, FLOW_FAILED]),
                                           models.Flow.updated_at < cutoff)
        ids = list(session.scalars(old))
        if ids:
            session.execute(delete(models.FlowStep).where(models.FlowStep.flow_id.in_(ids)))
            session.execute(delete(models.Flow).where(models.Flow.id.in_(ids)))
        return len(ids)


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
                               keep_failed_amphorae=cfg.keep_failed_amphorae)
        self.api = Controller(self.sessions, images, on_change=self.workers.wakeup.set)
        self.stopping = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self.health: HealthManager | None = None
        if cfg.health.enabled:
            self.health = self._health_manager(cfg.health)

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
                                start_failover=self.api.start_failover)
        return manager

    def _housekeeping(self) -> None:
        while not self.stopping.wait(self.cfg.housekeeping_interval):
            try:
                purged = purge_flows(self.sessions, self.cfg.flow_retention)
                if purged:
                    LOG.info("housekeeping: purged %d finished flows", purged)
            except Exception:
                LOG.exception("housekeeping failed")

    def start(self) -> Service:
        if self.health is not None:
            self.health.start()
            host, port = self.health.address
            if hasattr(self.compute, "heartbeat"):
                self.compute.heartbeat = (host, port, self.cfg.health.master_key,
                                          self.cfg.health.heartbeat_interval)
        self.workers.start()
        self._housekeeper = threading.Thread(target=self._housekeeping, daemon=True,
                                             name="controller-housekeeping")
        self._housekeeper.start()
        LOG.info("controller %s started: %d workers, database %s", self.cfg.controller_id,
                 self.cfg.workers, self.sessions.kw["bind"].url.render_as_string(
                     hide_password=True))
        return self

    def stop(self) -> None:
        self.stopping.set()
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
    service = Service(cfg)
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
