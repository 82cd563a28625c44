"""Split-brain guard: no VIP without a live keepalived.

keepalived removes its VIPs when it stops, but not when it is SIGKILLed
(OOM killer, a crash): the VIP stays on the interface while the peer, no
longer hearing adverts, raises it too, and both amphorae answer ARP for it.
This process, supervised by the agent's master like the heartbeat sender,
waits on keepalived's VRRP process with a pidfd (the kernel wakes it the
moment that process exits, no polling interval) and, while no VRRP process
of this amphora is alive, removes the config's VIPs from their interfaces.
The heartbeat sender stops sending at the same time
(amphora_agent/health.py ``should_send_heartbeat``), so the controller also
fails the amphora over. It also (re)installs the VRRP peer filter
(amphora_agent/vrrp/firewall.py) whenever the config changes, so the rule is
back after a reboot before anything else touches keepalived.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from amphora_agent.config import AgentConfig, load
from amphora_agent.heartbeat_service import HeartbeatSupervisor, _die_with_parent
from amphora_agent.network import netlink
from amphora_agent.vrrp import firewall, instances
from amphora_agent.vrrp.keepalived import SERVICE_NAME
from amphora_contract import netns
from amphora_contract import vrrp as paths

LOG = logging.getLogger(__name__)
# How often to look again while there is nothing to wait on.
IDLE_INTERVAL = 0.05
# Longest single wait on a live keepalived (then the config is looked at again).
WATCH_INTERVAL = 0.5


def config_path(config: AgentConfig) -> Path:
    return Path(paths.check_script_dir(config.base_path)) / paths.CONFIG_NAME


def vrrp_pid(config: AgentConfig) -> int | None:
    """The live keepalived VRRP process of this amphora (its ``-r`` pid file).

    A zombie is dead: a SIGKILLed keepalived's VRRP child may wait a while to
    be reaped once its parent is gone too."""
    pid_file = Path(paths.check_script_dir(config.base_path)) / f"{SERVICE_NAME}.vrrp.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError, IndexError):
        return None
    name, _, rest = stat.partition(" (")[2].rpartition(") ")
    alive = rest[:1] not in ("Z", "X", "")
    return pid if name == "keepalived" and alive else None


def release_vips(namespace: str, facts: Sequence[instances.VrrpInstanceFacts]) -> list[str]:
    """Remove every configured VIP still on its interface; the addresses removed."""
    wanted = {(v.interface, str(v.address)) for f in facts for v in f.vips}
    if not wanted or not netns.exists(namespace):
        return []
    removed = []
    with netns.entered(namespace), netlink.IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for addr in ipr.get_addr():
            key = (names.get(addr["index"]), addr.get_attr("IFA_ADDRESS"))
            if key not in wanted:
                continue
            with contextlib.suppress(netlink.NetlinkError):
                ipr.addr("del", index=addr["index"], address=key[1],
                         prefixlen=addr["prefixlen"])
                removed.append(f"{key[1]}/{addr['prefixlen']} dev {key[0]}")
    return removed


def wait_exit(pid: int, timeout: float) -> None:
    """Return when ``pid`` exits or after ``timeout``."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


class Guard:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.path = config_path(config)
        self.stopped = False
        self._seen: float | None = None
        self.facts: list[instances.VrrpInstanceFacts] = []

    def refresh(self) -> bool:
        """Re-read the config when it changed; False when there is none."""
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            self._seen, self.facts = None, []
            return False
        if mtime != self._seen:
            self._seen = mtime
            self.facts = instances.load(self.path)
            if netns.exists(self.config.namespace):
                try:
                    firewall.apply(self.config.namespace, self.facts)
                except (RuntimeError, OSError) as exc:
                    LOG.error("cannot install the VRRP peer filter: %s", exc)
        return True

    def step(self) -> None:
        if not self.refresh():
            time.sleep(WATCH_INTERVAL)
            return
        pid = vrrp_pid(self.config)
        if pid is not None:
            wait_exit(pid, WATCH_INTERVAL)
            return
        for address in release_vips(self.config.namespace, self.facts):
            LOG.warning("keepalived is not running: removed VIP %s", address)
        time.sleep(IDLE_INTERVAL)

    def run(self) -> None:
        while not self.stopped:
            try:
                self.step()
            except Exception:  # keep guarding; the next pass retries
                LOG.exception("VRRP guard pass failed")
                time.sleep(WATCH_INTERVAL)


def command(config_file: str) -> list[str]:
    return [sys.executable, "-m", "amphora_agent.vrrp.guard", "--config-file", config_file]


class GuardSupervisor(HeartbeatSupervisor):
    """Keeps the guard running, the way the heartbeat sender is kept running."""

    def command(self) -> list[str]:
        return command(self.config_file)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amphora-vrrp-guard",
                                     description="Remove VIPs that no keepalived holds.")
    parser.add_argument("--config-file", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    _die_with_parent()
    guard = Guard(load(args.config_file))

    def stop(_sig: int, _frame: object) -> None:
        guard.stopped = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    LOG.info("VRRP guard started for %s", args.config_file)
    guard.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
