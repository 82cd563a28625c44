"""Service managers; pick one with :func:`make_service_manager`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from amphora_agent.services.base import ServiceError, ServiceManager, ServiceSpec
from amphora_agent.services.direct import DirectServiceManager
from amphora_agent.services.systemd import SystemdServiceManager

if TYPE_CHECKING:
    from amphora_agent.config import AgentConfig

__all__ = ["DirectServiceManager", "ServiceError", "ServiceManager", "ServiceSpec",
           "SystemdServiceManager", "make_service_manager", "systemd_is_running"]


def systemd_is_running() -> bool:
    """systemd's own test: it creates this directory when it is PID 1."""
    return os.path.isdir("/run/systemd/system")


def make_service_manager(config: AgentConfig) -> ServiceManager:
    kind = config.service_manager
    if kind == "auto":
        kind = "systemd" if systemd_is_running() else "direct"
    if kind == "systemd":
        return SystemdServiceManager()
    return DirectServiceManager(os.path.join(config.base_path, "services"))
