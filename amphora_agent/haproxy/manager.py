"""Load balancers on this amphora: upload, run, reload, read and delete.

Rules (docs/haproxy.md, docs/architecture.md):
- an uploaded config is validated by the real ``haproxy -c`` with the
  service's own arguments before it replaces anything; a bad one is a 400 and
  the installed config and the running process are untouched;
- the config HAProxy last ran successfully is kept as "last known good"; if a
  start or reload of a valid config still fails, it is restored and run, and
  the failure is reported;
- a reload is confirmed through the master CLI (a new worker generation and
  the master's reload counter), retried if the master refused it, and
  concurrent reloads of one LB are coalesced;
- server state is saved before a reload or stop and loaded by the new
  workers (``server-state-file``), so member state survives.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import resource
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from amphora_agent import fileutil, health, metrics
from amphora_agent.certstore import CertStore
from amphora_agent.config import AgentConfig
from amphora_agent.errors import ApiError, InvalidRequest, NotFound
from amphora_agent.haproxy import cfgfile, confpaths, process, sockets
from amphora_agent.haproxy.coalesce import Coalescer
from amphora_agent.haproxy.layout import LbLayout, installed_lb_ids
from amphora_agent.services import ServiceError, ServiceManager, ServiceSpec
from amphora_agent.validation import require_uuid

LOG = logging.getLogger(__name__)
ACTIONS = ("start", "stop", "reload")
CONFIRM_TIMEOUT = 10.0
RELOAD_ATTEMPTS = 3
LOCK_DIR = ".locks"


class _HeldLocks(threading.local):
    """LB locks the current thread holds, with their depth (re-entrancy)."""

    def __init__(self) -> None:
        self.depth: dict[str, int] = {}

    def get(self, lb_id: str, default: int) -> int:
        return self.depth.get(lb_id, default)

    def __setitem__(self, lb_id: str, value: int) -> None:
        self.depth[lb_id] = value

    def __getitem__(self, lb_id: str) -> int:
        return self.depth[lb_id]

    def __delitem__(self, lb_id: str) -> None:
        del self.depth[lb_id]


class ReloadFailed(ApiError):
    status = 500
    message = "Error reloading haproxy"


class StartFailed(ApiError):
    status = 500
    message = "Error starting haproxy"


def lb_not_found(lb_id: str) -> NotFound:
    return NotFound(f"No loadbalancer with UUID: {lb_id}", message="Loadbalancer Not Found")


class LoadBalancers:
    def __init__(self, config: AgentConfig, services: ServiceManager, certs: CertStore) -> None:
        self.config = config
        self.services = services
        self.certs = certs
        self.base_path = Path(config.base_path)
        self._coalescers: dict[str, Coalescer[str]] = {}
        self._guard = threading.Lock()
        self._held = _HeldLocks()

    # -- files -------------------------------------------------------------

    def layout(self, lb_id: str) -> LbLayout:
        return LbLayout(self.base_path, require_uuid(lb_id, "lb_id"))

    def installed_layout(self, lb_id: str) -> LbLayout:
        layout = self.layout(lb_id)
        if not layout.config.is_file():
            raise lb_not_found(layout.lb_id)
        return layout

    def places(self, layout: LbLayout) -> confpaths.Places:
        """Where this LB's config may name files (docs/agent.md)."""
        return confpaths.places(layout, self.certs.path(layout.lb_id))

    def amphora_id(self, layout: LbLayout) -> str:
        try:
            return layout.amphora_id_file.read_text().strip()
        except FileNotFoundError:
            return self.config.amphora_id or ""

    def spec(self, layout: LbLayout) -> ServiceSpec:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return process.service_spec(self.config.haproxy_cmd, layout, self.amphora_id(layout),
                                    self.config.namespace, hard)

    def upload(self, amp_id: str, lb_id: str, chunks: Iterable[bytes]) -> str:
        """Validate and install a config; returns its md5 (the ETag).

        The LB lock is held from the first look at the directory to the
        installed service, so a concurrent delete or failed upload can neither
        remove this config nor leave half of it behind.
        """
        amp_id = require_uuid(amp_id, "amphora_id")
        layout = self.layout(lb_id)
        fileutil.ensure_dir(self.base_path)
        digest = hashlib.md5(usedforsecurity=False)

        def hashed() -> Iterator[bytes]:
            for chunk in chunks:
                digest.update(chunk)
                yield chunk

        with self.locked(layout):
            created = not layout.config.exists()
            try:
                with fileutil.staged(layout.config, hashed()) as staged:
                    confpaths.check(staged.read_text(errors="surrogateescape"),
                                    self.places(layout))
                    ok, output = process.check(self.config.haproxy_cmd, layout, staged, amp_id)
                    if not ok:
                        metrics.count(self.config, "config_validation_failures")
                        raise InvalidRequest(output)
                fileutil.atomic_write(layout.amphora_id_file, amp_id.encode())
                self.services.install(self.spec(layout))
            except BaseException:
                if created:
                    self._remove_files(layout)
                    fileutil.remove(self._lock_path(layout))  # safe: see locked()
                raise
        LOG.info("installed config for %s (md5 %s)", layout.lb_id, digest.hexdigest())
        return digest.hexdigest()

    def get_config(self, lb_id: str) -> tuple[bytes, str]:
        layout = self.installed_layout(lb_id)
        try:
            data = layout.config.read_bytes()
        except FileNotFoundError:  # deleted since the check
            raise lb_not_found(layout.lb_id) from None
        return data, hashlib.md5(data, usedforsecurity=False).hexdigest()

    # -- actions -------------------------------------------------------------

    def action(self, lb_id: str, action: str) -> str:
        verb = action.lower()
        if verb not in ACTIONS:
            raise InvalidRequest(f"Unknown action: {action}", message="Invalid Request")
        layout = self.installed_layout(lb_id)
        if verb == "stop":
            with self.locked_installed(layout):
                self.save_server_state(layout)
                self.services.stop(layout.service_name)
            return f"haproxy daemon for {layout.lb_id} stopped"
        if verb == "start":
            with self.locked_installed(layout):
                if not self.services.is_running(layout.service_name):
                    self._start(layout)
            return f"Configuration file is valid\nhaproxy daemon for {layout.lb_id} started"
        if self.holds_lock(layout):
            # Called by a collaborator that already holds the lock (a member
            # change applied with a reload): waiting for a coalesced reload run
            # by another thread would deadlock on that lock.
            return self._reload(layout)
        return self._coalescer(layout.lb_id).run(lambda: self._reload(layout))

    def _coalescer(self, lb_id: str) -> Coalescer[str]:
        with self._guard:
            return self._coalescers.setdefault(lb_id, Coalescer())

    def holds_lock(self, layout: LbLayout) -> bool:
        return self._held.get(layout.lb_id, 0) > 0

    @contextlib.contextmanager
    def locked(self, layout: LbLayout) -> Iterator[None]:
        """One change at a time per LB, from read to install, also across
        gunicorn worker processes; re-entrant within a thread.

        The lock file lives outside the LB's directory (``.locks/``) so that
        delete's ``rmtree`` cannot pull it from under a waiter. Delete unlinks
        it while holding it; a waiter then finds its file replaced and locks
        the new one, so two holders never exist at once.
        """
        held = self._held.get(layout.lb_id, 0)
        if held:
            self._held[layout.lb_id] = held + 1
            try:
                yield
            finally:
                self._held[layout.lb_id] -= 1
            return
        path = self._lock_path(layout)
        while True:
            fileutil.ensure_dir(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(path))
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                break
            os.close(fd)  # unlinked by a delete while we waited
        self._held[layout.lb_id] = 1
        try:
            yield
        finally:
            del self._held[layout.lb_id]
            os.close(fd)

    @contextlib.contextmanager
    def locked_installed(self, layout: LbLayout) -> Iterator[None]:
        """The lock, and a 404 if the LB was deleted while we waited for it."""
        with self.locked(layout):
            if not layout.config.is_file():
                raise lb_not_found(layout.lb_id)
            yield

    def _lock_path(self, layout: LbLayout) -> Path:
        return self.base_path / LOCK_DIR / f"{layout.lb_id}.lock"

    def _start(self, layout: LbLayout) -> None:
        try:
            self.services.start(self.spec(layout))
            self._confirm_started(layout)
        except (ServiceError, sockets.SocketError, TimeoutError) as exc:
            output = getattr(exc, "output", "") or str(exc)
            if self._restore_last_good(layout) and self._started(layout):
                metrics.count(self.config, "haproxy_rollbacks")
                raise StartFailed(f"{output}\nrolled back to the last known good "
                                  "configuration, which is running") from exc
            raise StartFailed(output) from exc
        self._mark_good(layout)

    def _started(self, layout: LbLayout) -> bool:
        """Start the installed config; whether HAProxy runs it."""
        try:
            self.services.start(self.spec(layout))
            self._confirm_started(layout)
        except (ServiceError, sockets.SocketError, TimeoutError):
            return False
        return True

    def _confirm_started(self, layout: LbLayout) -> sockets.ProcessTable:
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while True:
            try:
                table = sockets.show_proc(str(layout.master_socket))
                if table.workers:
                    return table
            except sockets.SocketError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"haproxy for {layout.lb_id} has no worker")
            time.sleep(0.01)

    def _reload(self, layout: LbLayout) -> str:
        with self.locked_installed(layout):
            if not self.services.is_running(layout.service_name):
                self._start(layout)
                return f"Configuration file is valid\nhaproxy daemon for {layout.lb_id} started"
            self.save_server_state(layout)
            ok, output = self._master_reload(layout)
            if ok:
                self._mark_good(layout)
                metrics.count(self.config, "haproxy_reloads")
                return f"Configuration file is valid\nhaproxy daemon for {layout.lb_id} reloaded"
            metrics.count(self.config, "haproxy_reload_failures")
            if self._restore_last_good(layout):
                restored, restore_output = self._master_reload(layout)
                if restored:
                    metrics.count(self.config, "haproxy_rollbacks")
                    raise ReloadFailed(f"{output}\nrolled back to the last known good "
                                       "configuration, which is running")
                output += "\nrollback failed too:\n" + restore_output
            raise ReloadFailed(output)

    def _master_reload(self, layout: LbLayout) -> tuple[bool, str]:
        """Ask the master to reload and wait for a new worker generation."""
        master = str(layout.master_socket)
        last_error = ""
        for _attempt in range(RELOAD_ATTEMPTS):
            try:
                before = sockets.show_proc(master)
                health.await_held(self.config, layout, before.workers)
                sockets.command(master, "reload")
            except sockets.SocketError as exc:
                last_error = str(exc)
                time.sleep(0.1)
                continue
            outcome = self._await_generation(master, before)
            if outcome is True:
                return True, ""
            if outcome is False:
                return False, ("haproxy failed to load the new configuration (the master "
                               "kept the previous workers); see the amphora's haproxy log")
            last_error = "the master did not confirm the reload"
        return False, last_error

    @staticmethod
    def _await_generation(master: str, before: sockets.ProcessTable) -> bool | None:
        """True: new workers run; False: the master reports a failed load;
        None: nothing happened (the reload was not taken)."""
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while time.monotonic() < deadline:
            time.sleep(0.005)
            try:
                table = sockets.show_proc(master)
            except sockets.SocketError:
                continue  # the master is re-executing itself
            if table.failed > before.failed:
                return False
            if table.reloads > before.reloads and table.workers and not (
                    set(table.workers) & set(before.workers)):
                return True
        return None

    def _mark_good(self, layout: LbLayout) -> None:
        fileutil.atomic_write(layout.last_good, layout.config.read_bytes())

    def _restore_last_good(self, layout: LbLayout) -> bool:
        """Put the last known good config back; False if there is none to use."""
        try:
            good = layout.last_good.read_bytes()
        except FileNotFoundError:
            return False
        if good == layout.config.read_bytes():
            return False
        LOG.warning("restoring last known good config for %s", layout.lb_id)
        fileutil.atomic_write(layout.config, good)
        return True

    def save_server_state(self, layout: LbLayout) -> None:
        """Dump ``show servers state`` where the config's new workers will read it."""
        text = layout.config.read_text(errors="replace")
        state_file = cfgfile.server_state_file(text)
        socket_info = cfgfile.stats_socket(text)
        if not state_file or not socket_info or not self.services.is_running(
                layout.service_name):
            return
        try:
            state = sockets.command(socket_info[0], "show servers state")
        except sockets.SocketError as exc:
            LOG.warning("could not save server state of %s: %s", layout.lb_id, exc)
            return
        fileutil.atomic_write(state_file, state.encode())

    # -- reading and deleting ---------------------------------------------------

    def listeners(self) -> list[dict[str, str]]:
        return self.status()[1]

    def status(self) -> tuple[int, list[dict[str, str]]]:
        """(running LBs, one entry per listener frontend), in one pass."""
        running = 0
        result = []
        for lb_id in installed_lb_ids(self.base_path):
            layout = LbLayout(self.base_path, lb_id)
            active = self.services.is_running(layout.service_name)
            running += active
            status = "ACTIVE" if active else "OFFLINE"
            try:
                text = layout.config.read_text(errors="replace")
            except FileNotFoundError:
                continue  # deleted meanwhile: readers do not take the LB lock
            for frontend in cfgfile.frontends(text):
                if not frontend.is_listener:
                    continue  # e.g. the internal Prometheus exporter endpoint
                result.append({"status": status, "uuid": frontend.name,
                               "type": frontend.listener_type})
        return running, result

    def delete(self, lb_id: str) -> None:
        """Stop and remove an LB with its certs, sockets and state; idempotent.

        Under the LB lock: an upload racing the delete either completes
        before it (and is deleted) or after it (and is fully installed).
        """
        layout = self.layout(lb_id)
        with self.locked(layout):
            self._remove_files(layout)
            self.certs.delete_all(layout.lb_id)
            fileutil.remove(self._lock_path(layout))
        with self._guard:
            self._coalescers.pop(layout.lb_id, None)

    def _remove_files(self, layout: LbLayout) -> None:
        """The LB's service, directory, stats socket and state file (lock held)."""
        places = self.places(layout)
        extra: list[str] = []
        with contextlib.suppress(FileNotFoundError):
            text = layout.config.read_text(errors="replace")
            socket_info = cfgfile.stats_socket(text)
            extra = [p for p in (socket_info[0] if socket_info else None,
                                 cfgfile.server_state_file(text)) if p]
        self.services.uninstall(layout.service_name)
        shutil.rmtree(layout.directory, ignore_errors=True)
        for path in extra:
            if path.startswith("/") and places.owns(path):
                fileutil.remove(path)
