"""Health heartbeats to the controller: the sender loop.

The envelope is :mod:`amphora_contract.heartbeat`; the message shapes are
described in docs/architecture.md.

The sender re-reads the agent config file whenever it changes, which is how
``PUT /1.0/config`` changes targets, interval, key and envelope version
without a restart: the change is used at the next interval.

Exactly-once counters (docs/agent.md, "Heartbeat counters"): a heartbeat is
built, then persisted as ``pending`` together with the counters it reports
and the next sequence number, then sent, then marked sent. A sender that
dies before sending sends the pending message (same sequence number) when it
starts again; one that dies between ``sendto`` and marking it sent sends it
once more, which a version-4 receiver drops as a replay of that sequence
number.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from amphora_agent import config as agent_config
from amphora_contract import heartbeat as envelope
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
           "HeartbeatSender", "unwrap", "wrap"]
LOG = logging.getLogger(__name__)
# How often workers are checked between heartbeats, so that a worker is held
# before the reload that makes it old (amphora_agent/health.py).
POLL_INTERVAL = 0.25


def seal(config: agent_config.AgentConfig, body: dict[str, Any]) -> bytes:
    """The datagram for ``body`` in the configured envelope version."""
    assert config.heartbeat_key is not None
    if config.heartbeat_version == 4:
        # timestamped now: a pending message sent again after a restart is not
        # stale, and its sequence number tells a receiver whether it is a replay
        return envelope.wrap_v4(body, config.heartbeat_key)
    return wrap({**body, "ver": envelope.VERSION}, config.heartbeat_key)


class HeartbeatSender:
    """Sends one datagram per interval, round-robin over the controllers."""

    def __init__(self, config_file: str,
                 should_send: Callable[[agent_config.AgentConfig], bool] | None = None) -> None:
        from amphora_agent.health import Collector

        self.config_file = config_file
        self.should_send = should_send or (lambda _c: True)
        self._stop = threading.Event()
        self._stamp: tuple[int, int] | None = None
        self._config: agent_config.AgentConfig | None = None
        self._targets: itertools.cycle[agent_config.HeartbeatTarget] | None = None
        self._warned_no_key = False
        config = self._refresh_config()
        self.collector = Collector(config.heartbeat_state_path)

    @property
    def seq(self) -> int:
        return self.collector.state.seq

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

    def _enabled(self, config: agent_config.AgentConfig) -> bool:
        if not config.heartbeat_key:
            if not self._warned_no_key:
                LOG.error("heartbeat_key is not set: sending no heartbeats")
                self._warned_no_key = True
            return False
        return bool(config.controller_ip_port_list) and self._targets is not None

    def poll(self) -> None:
        config = self._refresh_config()
        if self._enabled(config):
            self.collector.poll(config)

    def send_once(self) -> bool:
        from amphora_agent.health import apply_deltas

        config = self._refresh_config()
        if not self._enabled(config) or not self.should_send(config):
            return False
        assert self._targets is not None
        state = self.collector.state
        if state.pending is None:
            listeners, pools, alive = self.collector.collect(config)
            apply_deltas(listeners, state.take_deltas(alive, listeners))
            state.pending = message(config.amphora_id, state.seq, listeners, pools,
                                    version=config.heartbeat_version)
            state.seq += 1
            self.collector.save()  # counters and message persisted before they leave
        target = next(self._targets)
        datagram = seal(config, state.pending)
        family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(datagram, (target.host, target.port))
        state.pending = None
        state.heartbeats_sent += 1
        self.collector.save()
        return True

    def run(self) -> None:
        """Send until :meth:`stop`; runs as the main thread of the heartbeat process.

        There is deliberately no thread variant: a sender thread in the
        gunicorn master deadlocked forked workers (docs/agent.md).
        """
        next_send = time.monotonic()
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:
                LOG.exception("heartbeat poll failed")
            if time.monotonic() >= next_send:
                interval = 10
                try:
                    self.send_once()
                    interval = self._config.heartbeat_interval if self._config else 10
                except Exception:
                    LOG.exception("heartbeat failed")
                next_send = time.monotonic() + interval
            self._stop.wait(POLL_INTERVAL)
        self.collector.close()

    def stop(self) -> None:
        self._stop.set()
