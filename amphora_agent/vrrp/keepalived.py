"""Validate, install and run keepalived for this amphora.

keepalived runs in the agent's namespace and enters the HAProxy namespace
itself (``-s``): under ``ip netns exec`` the kernel refuses the process-event
socket that ``vrrp_track_process`` needs (docs/keepalived.md). Validation
runs the real ``keepalived -t`` against the staged file, as PID 1 of a new
PID namespace, because keepalived 2.2.7 terminates itself during ``-t`` when
a script runs as ``script_user`` and its parent is visible.
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from amphora_agent import fileutil
from amphora_agent.errors import ApiError, InvalidRequest
from amphora_agent.services import ServiceError, ServiceManager, ServiceSpec
from amphora_agent.vrrp import confcheck, firewall, instances
from amphora_contract import netns
from amphora_contract import vrrp as paths
from amphora_contract.agent_config import AgentConfig

LOG = logging.getLogger(__name__)
CHECK_TIMEOUT = 60
CONFIRM_SECONDS = 0.5
ACTIONS = ("start", "stop", "reload")
SERVICE_NAME = "amphora-keepalived"
# keepalived -t exit codes (keepalived 2.2.7): 0 clean, 6 "scripts run as
# root without script security" - which also hides real errors, so with 6
# every line of output must be one of these benign warnings, which Octavia's
# own template (scripts as root, nopreempt with state MASTER) always causes.
_BENIGN = (
    re.compile(r"SECURITY VIOLATION - scripts are being executed but script_security "
               r"not enabled\."),
    re.compile(r"\(\w+\) Warning - nopreempt will not work with initial state MASTER - "
               r"clearing"),
    re.compile(r"WARNING - default user 'keepalived_script' for script execution does not "
               r"exist - please create\."),
)


class ActionFailed(ApiError):
    status = 500


@dataclass(frozen=True)
class Instance:
    """The files of one keepalived process (the VRRP one or an LVS listener's)."""

    name: str
    config: Path
    pid_dir: Path
    description: str

    def pid(self, kind: str) -> Path:
        return self.pid_dir / f"{self.name}.{kind}.pid"


def require_namespace(ns: str) -> None:
    """keepalived enters the HAProxy namespace, which plugging the VIP creates."""
    if not netns.exists(ns):
        raise InvalidRequest(f"namespace {ns} does not exist yet: plug the VIP first")


def config_test(keepalived_cmd: str, ns: str, config: Path) -> tuple[bool, str]:
    """``keepalived -t`` in the namespace the service runs in; (ok, output)."""
    proc = subprocess.run(["unshare", "--pid", "--fork", keepalived_cmd, "-s", ns, "-t",
                           "-f", str(config)], capture_output=True, check=False,
                          timeout=CHECK_TIMEOUT)
    output = (proc.stdout + proc.stderr).decode("utf-8", errors="replace").strip()
    if proc.returncode == 0:
        return True, output
    if proc.returncode == 6:
        lines = [line for line in output.splitlines() if line.strip()]
        return all(any(b.fullmatch(line) for b in _BENIGN) for line in lines), output
    return False, output


def service_spec(keepalived_cmd: str, ns: str, inst: Instance) -> ServiceSpec:
    args = ["-s", ns, "-f", str(inst.config), "-p", str(inst.pid("main")),
            "-r", str(inst.pid("vrrp")), "-c", str(inst.pid("checkers")),
            "-b", str(inst.pid("bfd"))]
    return ServiceSpec(
        name=inst.name, description=inst.description,
        foreground=(keepalived_cmd, "--dont-fork", "--log-console", "--log-detail", *args),
        daemon=(keepalived_cmd, "--log-detail", *args),
        pid_file=str(inst.pid("main")))


class Keepalived:
    """The VRRP keepalived of this amphora: ``{base_path}/vrrp/``."""

    def __init__(self, config: AgentConfig, services: ServiceManager) -> None:
        self.config = config
        self.services = services
        self.base_path = Path(config.base_path)
        self.directory = Path(paths.check_script_dir(config.base_path))
        self.instance = Instance(SERVICE_NAME, self.directory / paths.CONFIG_NAME,
                                 self.directory, "keepalived (VRRP) of the amphora")

    def install_check_script(self) -> Path:
        """Octavia's template runs ``{base_path}/vrrp/check_script.sh``; ours ships
        as agent package data. Root-owned, 0755, in a 0755 directory: keepalived's
        script security refuses scripts anyone else could change."""
        fileutil.ensure_dir(self.directory, 0o755)
        self.directory.chmod(0o755)
        script = Path(paths.check_script(self.config.base_path))
        data = resources.files("amphora_agent.vrrp").joinpath(
            "scripts", paths.CHECK_SCRIPT_NAME).read_bytes()
        fileutil.atomic_write(script, data, mode=0o755)
        return script

    def upload(self, chunks: Iterable[bytes]) -> str:
        self.install_check_script()
        require_namespace(self.config.namespace)
        digest = hashlib.md5(usedforsecurity=False)

        def hashed() -> Iterator[bytes]:
            for chunk in chunks:
                digest.update(chunk)
                yield chunk

        with fileutil.staged(self.instance.config, hashed()) as staged:
            confcheck.check(staged.read_text(encoding="utf-8", errors="replace"),
                            (self.directory,), self.config.namespace)
            ok, output = config_test(self.config.keepalived_cmd, self.config.namespace, staged)
            if not ok:
                raise InvalidRequest(output or "keepalived -t refused the config")
        self.services.install(self.spec())
        self.filter_peers()
        LOG.info("installed keepalived config (md5 %s)", digest.hexdigest())
        return digest.hexdigest()

    def spec(self) -> ServiceSpec:
        return service_spec(self.config.keepalived_cmd, self.config.namespace, self.instance)

    def filter_peers(self) -> None:
        """VRRP adverts only from the configured peers (amphora_agent/vrrp/firewall.py)."""
        try:
            firewall.apply(self.config.namespace, instances.load(self.instance.config))
        except (RuntimeError, OSError) as exc:
            LOG.error("VRRP peer filter: %s", exc)
            raise ActionFailed("cannot install the VRRP peer filter; see the agent log",
                               message="Failed to install the VRRP peer filter") from exc

    def action(self, action: str) -> str:
        verb = action.lower()
        if verb not in ACTIONS:
            raise InvalidRequest(f"Unknown action: {action}", message="Invalid Request")
        if verb != "stop" and not self.instance.config.is_file():
            raise InvalidRequest("no keepalived config uploaded", message="Invalid Request")
        try:
            if verb == "stop":
                self.services.stop(self.instance.name)
            else:
                # start of a running keepalived reloads it (Octavia's agent does too)
                require_namespace(self.config.namespace)
                self.filter_peers()
                self.services.reload(self.spec())
        except ServiceError as exc:
            LOG.error("keepalived %s failed: %s", verb, exc.output)
            raise ActionFailed(f"keepalived {verb} failed; see the agent log",
                               message=f"Failed to {verb} keepalived service") from exc
        past = {"start": "started", "stop": "stopped", "reload": "reloaded"}[verb]
        return f"keepalived {past}"

    def running(self) -> bool:
        return self.services.is_running(self.instance.name)




LVS_PREFIX = "octavia-keepalivedlvs-"


class LvsListeners:
    """UDP listeners: one keepalived (``virtual_server`` config) per listener,
    in ``{base_path}/lvs/`` under Octavia's file names. Member checks may run
    only from ``{base_path}/lvs/check/``."""

    def __init__(self, config: AgentConfig, services: ServiceManager) -> None:
        self.config = config
        self.services = services
        self.directory = Path(config.base_path) / paths.LVS_DIR
        self.check_dir = Path(paths.lvs_check_dir(config.base_path))

    def instance(self, listener_id: str) -> Instance:
        return Instance(f"amphora-lvs-{listener_id}",
                        self.directory / f"{LVS_PREFIX}{listener_id}.conf", self.directory,
                        f"keepalived (LVS) of UDP listener {listener_id}")

    def exists(self, listener_id: str) -> bool:
        return self.instance(listener_id).config.is_file()

    def spec(self, listener_id: str) -> ServiceSpec:
        return service_spec(self.config.keepalived_cmd, self.config.namespace,
                            self.instance(listener_id))

    def upload(self, listener_id: str, chunks: Iterable[bytes]) -> str:
        inst = self.instance(listener_id)
        fileutil.ensure_dir(self.check_dir, 0o755)
        require_namespace(self.config.namespace)
        digest = hashlib.md5(usedforsecurity=False)

        def hashed() -> Iterator[bytes]:
            for chunk in chunks:
                digest.update(chunk)
                yield chunk

        with fileutil.staged(inst.config, hashed()) as staged:
            confcheck.check(staged.read_text(encoding="utf-8", errors="replace"),
                            (self.check_dir,), self.config.namespace)
            ok, output = config_test(self.config.keepalived_cmd, self.config.namespace, staged)
            if not ok:
                raise InvalidRequest(output or "keepalived -t refused the config")
        self.services.install(self.spec(listener_id))
        return digest.hexdigest()

    def _confirm_running(self, name: str) -> None:
        """keepalived forks and writes its pid before its checker sets up IPVS;
        without IPVS (no ip_vs in the kernel) it exits right after. Watch it
        for a moment so such a start is reported as failed, not as running."""
        deadline = time.monotonic() + CONFIRM_SECONDS
        while time.monotonic() < deadline:
            if not self.services.is_running(name):
                raise ServiceError(f"{name} exited right after starting (is ip_vs available?)")
            time.sleep(0.02)

    def get_config(self, listener_id: str) -> bytes:
        return self.instance(listener_id).config.read_bytes()

    def action(self, listener_id: str, action: str) -> str:
        verb = action.lower()
        if verb not in ACTIONS:
            raise InvalidRequest(f"Unknown action: {action}", message="Invalid Request")
        name = self.instance(listener_id).name
        try:
            if verb == "stop":
                self.services.stop(name)
            else:
                self.services.reload(self.spec(listener_id))
                self._confirm_running(name)
        except ServiceError as exc:
            LOG.error("UDP listener %s %s failed: %s", listener_id, verb, exc.output)
            raise ActionFailed(f"keepalived {verb} failed; see the agent log",
                               message=f"Failed to {verb} UDP listener {listener_id}") from exc
        past = {"start": "started", "stop": "stopped", "reload": "reloaded"}[verb]
        return f"keepalivedlvs {past}"

    def delete(self, listener_id: str) -> None:
        inst = self.instance(listener_id)
        self.services.uninstall(inst.name)
        fileutil.remove(inst.config)
        for kind in ("main", "vrrp", "checkers", "bfd"):
            fileutil.remove(inst.pid(kind))

    def listener_ids(self) -> list[str]:
        try:
            names = sorted(p.name for p in self.directory.iterdir())
        except FileNotFoundError:
            return []
        return [n[len(LVS_PREFIX):-len(".conf")] for n in names
                if n.startswith(LVS_PREFIX) and n.endswith(".conf")]

    def statuses(self) -> list[dict[str, str]]:
        return [{"status": "ACTIVE" if self.services.is_running(self.instance(i).name)
                 else "STOPPED", "uuid": i, "type": "UDP"} for i in self.listener_ids()]
