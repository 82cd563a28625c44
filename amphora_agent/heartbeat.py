"""Health heartbeats to the controller: the sender loop.

The envelope (version 3) is :mod:`amphora_contract.heartbeat`; the message
shapes are described in docs/architecture.md.

The sender re-reads the agent config file whenever it changes, which is how
``PUT /1.0/config`` changes targets, interval and key without a restart.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from amphora_agent import config as agent_config
from amphora_contract.heartbeat import (
    DIGEST_HEX_LEN,
    MAX_DATAGRAM,
    MAX_DECOMPRESSED,
    EnvelopeError,
    message,
    unwrap,
    wrap,
)

# The envelope is re-exported for the agent's own modules; other code imports
# amphora_contract.heartbeat.
__all__ = ["DIGEST_HEX_LEN", "MAX_DATAGRAM", "MAX_DECOMPRESSED", "EnvelopeError",
           "HeartbeatSender", "StatsCollector", "no_stats", "unwrap", "wrap"]
LOG = logging.getLogger(__name__)


StatsCollector = Callable[[agent_config.AgentConfig], tuple[dict[str, Any], dict[str, Any]]]


def no_stats(_config: agent_config.AgentConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {}


class HeartbeatSender:
    """Sends one datagram per interval, round-robin over the controllers."""

    def __init__(self, config_file: str, collect: StatsCollector = no_stats,
                 should_send: Callable[[agent_config.AgentConfig], bool] | None = None) -> None:
        self.config_file = config_file
        self.collect = collect
        self.should_send = should_send or (lambda _c: True)
        self._stop = threading.Event()
        self._stamp: tuple[int, int] | None = None
        self._config: agent_config.AgentConfig | None = None
        self._targets: itertools.cycle[agent_config.HeartbeatTarget] | None = None
        self._warned_no_key = False
        self.seq = 0

    def _refresh_config(self) -> agent_config.AgentConfig:
        st = os.stat(self.config_file)
        stamp = (st.st_mtime_ns, st.st_ino)
        if self._config is None or stamp != self._stamp:
            try:
                config = agent_config.load(self.config_file)
            except agent_config.ConfigError as exc:
                if self._config is None:
                    raise
                LOG.error("keeping previous heartbeat settings: %s", exc)
                self._stamp = stamp
                return self._config
            if self._config is None or (config.controller_ip_port_list
                                        != self._config.controller_ip_port_list):
                self._targets = itertools.cycle(config.controller_ip_port_list)
            self._config, self._stamp = config, stamp
            self._warned_no_key = False
        return self._config

    def build_message(self, config: agent_config.AgentConfig) -> dict[str, Any]:
        listeners, pools = self.collect(config)
        return message(config.amphora_id, self.seq, listeners, pools)

    def send_once(self) -> bool:
        config = self._refresh_config()
        if not config.heartbeat_key:
            if not self._warned_no_key:
                LOG.error("heartbeat_key is not set: sending no heartbeats")
                self._warned_no_key = True
            return False
        if not config.controller_ip_port_list or self._targets is None:
            return False
        if not self.should_send(config):
            return False
        target = next(self._targets)
        envelope = wrap(self.build_message(config), config.heartbeat_key)
        family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(envelope, (target.host, target.port))
        self.seq += 1
        return True

    def run(self) -> None:
        """Send until :meth:`stop`; runs as the main thread of the heartbeat process.

        There is deliberately no thread variant: a sender thread in the
        gunicorn master deadlocked forked workers (docs/agent.md).
        """
        while not self._stop.is_set():
            interval = 10
            try:
                self.send_once()
                interval = self._config.heartbeat_interval if self._config else 10
            except Exception:
                LOG.exception("heartbeat failed")
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
