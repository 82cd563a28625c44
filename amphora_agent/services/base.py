"""The one interface through which HAProxy and keepalived are run.

Two implementations: ``systemd`` (units, in real images) and ``direct`` (the
agent launches the daemon itself; embedded mode and tests, where PID 1 is not
systemd). Callers describe a service once, as a :class:`ServiceSpec`.
"""

from __future__ import annotations

import re
import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,120}$")


class ServiceError(RuntimeError):
    """A service could not be started, stopped or reloaded; carries its output."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one daemon.

    ``foreground`` runs it under a supervisor (systemd); ``daemon`` makes it
    fork into the background and write ``pid_file`` (direct mode), so it
    outlives an agent restart and never becomes the agent's zombie.
    """

    name: str
    description: str
    foreground: tuple[str, ...]
    daemon: tuple[str, ...]
    pid_file: str
    namespace: str | None = None
    reload_signal: int = signal.SIGHUP
    notify: bool = False
    limit_nofile: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(f"invalid service name {self.name!r}")
        # Every value ends up on one line of a unit file (or a stored spec):
        # a control character could start a line of its own.
        values = [self.description, *self.foreground, *self.daemon, self.pid_file,
                  self.namespace or "", *self.env, *self.env.values()]
        for value in values:
            if not isinstance(value, str) or not value.isprintable():
                raise ValueError(f"service {self.name}: {value!r} is not one printable line")


class ServiceManager(ABC):
    kind = "abstract"

    @abstractmethod
    def install(self, spec: ServiceSpec) -> None:
        """Make the service known (a unit file, a stored spec) without starting it."""

    @abstractmethod
    def start(self, spec: ServiceSpec) -> None: ...

    @abstractmethod
    def stop(self, name: str) -> None:
        """Stop if running; stopping a stopped service is not an error."""

    @abstractmethod
    def reload(self, spec: ServiceSpec) -> None:
        """Reload a running service; start it when it is not running.

        The reload is a signal. The direct manager sends it only once the
        daemon catches (or blocks) it; systemd runs the unit's ExecReload.
        Either way the signal only asks: callers that must know the reload
        happened confirm it through the daemon itself, as the HAProxy
        manager does over the master CLI.
        """

    @abstractmethod
    def is_running(self, name: str) -> bool: ...

    @abstractmethod
    def main_pid(self, name: str) -> int | None: ...

    @abstractmethod
    def uninstall(self, name: str) -> None:
        """Stop and forget the service; idempotent."""
